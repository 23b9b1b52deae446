// The signal queue: duplicate detection (sites resend after a lost ack,
// with the same message ID), dead-lettering of expired and poison messages,
// Entra-only access.
param location string
param name string
param queueName string = 'signals'
param receiverPrincipalId string
param senderPrincipalId string = ''

resource ns 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: name
  location: location
  sku: {
    name: 'Standard' // duplicate detection needs Standard or Premium
    tier: 'Standard'
  }
  properties: {
    disableLocalAuth: true // no SAS keys: managed identities only
    minimumTlsVersion: '1.2'
  }
}

resource q 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = {
  parent: ns
  name: queueName
  properties: {
    requiresDuplicateDetection: true
    duplicateDetectionHistoryTimeWindow: 'PT1H'
    deadLetteringOnMessageExpiration: true
    maxDeliveryCount: 10
    lockDuration: 'PT1M'
    defaultMessageTimeToLive: 'P7D'
  }
}

var dataReceiver = '4f6d3b9b-027b-4f4c-9142-0e5a2a2247e0'
var dataSender = '69a216fc-b8fb-44d8-bc22-1f3c2552a445'

resource receive 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(q.id, receiverPrincipalId, dataReceiver)
  scope: q
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataReceiver)
    principalId: receiverPrincipalId
    principalType: 'ServicePrincipal'
  }
}

resource send 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(senderPrincipalId)) {
  name: guid(q.id, senderPrincipalId, dataSender)
  scope: q
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataSender)
    principalId: senderPrincipalId
    principalType: 'ServicePrincipal'
  }
}

output endpoint string = ns.properties.serviceBusEndpoint
output queueName string = q.name
