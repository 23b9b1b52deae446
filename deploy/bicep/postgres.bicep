// The gateway replicas' shared state: an Azure Database for PostgreSQL
// flexible server with the modelfleet database (the gateway creates and
// migrates its tables at start-up). Deploy on its own:
//   az deployment group create -g <rg> -f deploy/bicep/postgres.bicep -p name=<server> administratorPassword=<...>
// then put postgres://<login>:<password>@<fqdn>:5432/modelfleet?sslmode=require
// in the Secret the cloud chart's gateway.store.secretName names.
targetScope = 'resourceGroup'

@description('Region of the server (default: the resource group\'s).')
param location string = resourceGroup().location

@description('Server name (globally unique; the host is <name>.postgres.database.azure.com).')
param name string

@description('Administrator login the gateway connects as.')
param administratorLogin string = 'modelfleet'

@secure()
@description('Its password.')
param administratorPassword string

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
    administratorLogin: administratorLogin
    administratorLoginPassword: administratorPassword
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

output host string = server.properties.fullyQualifiedDomainName
output database string = database.name
