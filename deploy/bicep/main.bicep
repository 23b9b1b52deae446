// modelfleet's Azure side: Azure ML's events to the gateway through Event
// Grid, the signal queue on Service Bus, and the roles modelfleet's
// identities need. Deploy into the workspace's resource group:
//   az deployment group create -g <rg> -f deploy/bicep/main.bicep -p @params.json
targetScope = 'resourceGroup'

@description('Region of the new resources (default: the resource group\'s).')
param location string = resourceGroup().location

@description('The existing Azure ML workspace whose events drive releases.')
param workspaceName string

@description('The gateway\'s Event Grid webhook, e.g. https://modelfleet.example.com/api/events.')
param gatewayWebhookUrl string

@description('Entra tenant and application (ID or URI) the gateway validates Event Grid\'s tokens against; empty: no Entra auth on delivery.')
param webhookTenantId string = ''
param webhookAppIdOrUri string = ''

@description('Service Bus namespace name (globally unique).')
param serviceBusName string

@description('Principal (object) ID of the cloud side\'s managed identity: gateway and worker.')
param cloudPrincipalId string

@description('Deprecated: one identity every edge site sends signals with; empty: none (sites send through the gateway, which relays).')
param edgePrincipalId string = ''

@description('Principal IDs of per-site identities (workload or managed identities) that send signals to Service Bus themselves; empty: every site sends through the gateway.')
param siteSenderPrincipalIds array = []

@description('The gateway relays the sites\' signals to Service Bus with its identity (Azure Service Bus Data Sender on the queue).')
param relayFromGateway bool = true

@description('Grant the cloud identity AzureML Data Scientist on the workspace (the amlarc driver creates endpoints and deployments).')
param grantAmlArc bool = true

module events 'eventgrid.bicep' = {
  name: 'modelfleet-events'
  params: {
    location: location
    workspaceName: workspaceName
    webhookUrl: gatewayWebhookUrl
    tenantId: webhookTenantId
    appIdOrUri: webhookAppIdOrUri
  }
}

module queue 'servicebus.bicep' = {
  name: 'modelfleet-queue'
  params: {
    location: location
    name: serviceBusName
    receiverPrincipalId: cloudPrincipalId
    relayFromGateway: relayFromGateway
    senderPrincipalId: edgePrincipalId
    siteSenderPrincipalIds: siteSenderPrincipalIds
  }
}

resource workspace 'Microsoft.MachineLearningServices/workspaces@2024-04-01' existing = {
  name: workspaceName
}

// AzureML Data Scientist: endpoints, deployments and models in the
// workspace, without the right to change the workspace itself.
var amlDataScientist = 'f6c7c914-8db3-469d-8ca1-694a8f32e121'

resource amlRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (grantAmlArc) {
  name: guid(workspace.id, cloudPrincipalId, amlDataScientist)
  scope: workspace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', amlDataScientist)
    principalId: cloudPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output systemTopicId string = events.outputs.systemTopicId
output serviceBusEndpoint string = queue.outputs.endpoint
output serviceBusNamespace string = queue.outputs.namespace
output queueName string = queue.outputs.queueName
