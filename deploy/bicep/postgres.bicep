// The gateway replicas' shared state: an Azure Database for PostgreSQL
// flexible server with the modelfleet database (the gateway creates and
// migrates its tables at start-up). Deploy on its own:
//   az deployment group create -g <rg> -f deploy/bicep/postgres.bicep -p name=<server> administratorPassword=<...>
// then put postgres://<login>:<password>@<fqdn>:5432/modelfleet?sslmode=require
// in the Secret the cloud chart's gateway.store.secretName names.
//
// Or with Entra authentication and no password anywhere (docs/deploy.md,
// "Entra authentication"): make the gateway's workload identity the
// server's Entra administrator,
//   ... -p name=<server> entraAdminObjectId=<identity's principal ID> entraAdminName=<identity's name> passwordAuth=false
// and give the chart gateway.store.entra=true and gateway.store.dsn=
// postgres://<identity's name>@<fqdn>:5432/modelfleet?sslmode=require
targetScope = 'resourceGroup'

@description('Region of the server (default: the resource group\'s).')
param location string = resourceGroup().location

@description('Server name (globally unique; the host is <name>.postgres.database.azure.com).')
param name string

@description('Administrator login the gateway connects as.')
param administratorLogin string = 'modelfleet'

@secure()
@description('Its password (with passwordAuth).')
param administratorPassword string = ''

@description('Password authentication (administratorLogin). Turn it off once Entra authentication is in use.')
param passwordAuth bool = true

@description('Object (principal) ID of the Entra principal to make the server\'s Entra administrator: the gateway\'s workload identity (a user-assigned managed identity). Empty: no Entra authentication.')
param entraAdminObjectId string = ''

@description('Its name, the user in the gateway\'s DSN (a managed identity\'s name).')
param entraAdminName string = ''

@description('Its kind: ServicePrincipal (managed identities, applications), User or Group.')
@allowed(['ServicePrincipal', 'User', 'Group'])
param entraAdminType string = 'ServicePrincipal'

var entra = !empty(entraAdminObjectId)

@description('Compute: Burstable B2s carries thousands of sites (docs/deploy.md, sizing).')
param skuName string = 'Standard_B2s'
param skuTier string = 'Burstable'

@description('Storage in GiB (grows automatically).')
param storageSizeGB int = 32

@description('Days of automated backups, the window of point-in-time restore (7 to 35).')
param backupRetentionDays int = 14

@description('A standby in another zone (needs a General Purpose or Memory Optimized tier).')
param zoneRedundant bool = false

resource server 'Microsoft.DBforPostgreSQL/flexibleServers@2024-08-01' = {
  name: name
  location: location
  sku: {
    name: skuName
    tier: skuTier
  }
  properties: {
    version: '16'
    administratorLogin: passwordAuth ? administratorLogin : null
    administratorLoginPassword: passwordAuth ? administratorPassword : null
    authConfig: {
      activeDirectoryAuth: entra ? 'Enabled' : 'Disabled'
      passwordAuth: passwordAuth ? 'Enabled' : 'Disabled'
      tenantId: entra ? subscription().tenantId : null
    }
    storage: {
      storageSizeGB: storageSizeGB
      autoGrow: 'Enabled'
    }
    backup: {
      backupRetentionDays: backupRetentionDays
      geoRedundantBackup: 'Disabled'
    }
    highAvailability: {
      mode: zoneRedundant ? 'ZoneRedundant' : 'Disabled'
    }
  }
}

resource database 'Microsoft.DBforPostgreSQL/flexibleServers/databases@2024-08-01' = {
  parent: server
  name: 'modelfleet'
  properties: {
    charset: 'UTF8'
    collation: 'en_US.utf8'
  }
}

// The gateway's identity as the server's Entra administrator: its access
// tokens (scope https://ossrdbms-aad.database.windows.net/.default) are its
// password.
resource entraAdmin 'Microsoft.DBforPostgreSQL/flexibleServers/administrators@2024-08-01' = if (entra) {
  parent: server
  name: entra ? entraAdminObjectId : 'none'
  // One change to the server at a time (a concurrent one fails ServerIsBusy).
  dependsOn: [database]
  properties: {
    principalName: entraAdminName
    principalType: entraAdminType
    tenantId: subscription().tenantId
  }
}

output host string = server.properties.fullyQualifiedDomainName
output entraUser string = entra ? entraAdminName : ''
output database string = database.name
