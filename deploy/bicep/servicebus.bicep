// The signal queue: duplicate detection (sites resend after a lost ack,
// with the same message ID), dead-lettering of expired and poison messages,
// Entra-only access.
//
// Who sends: by default the gateway, relaying what sites send it over mTLS
// (relayFromGateway), so no site holds a Service Bus credential. Sites that
// send straight to the queue do so each with its own identity
// (siteSenderPrincipalIds: one workload or managed identity per site, never
// a key). Every message is signed with its site's certificate key either
// way, and the monitor refuses an unsigned one or one about another site
// (docs/security.md, Signals).
param location string
param name string
param queueName string = 'signals'
@description('The gateway\'s identity: it receives (drift monitor) and, with relayFromGateway, sends.')
param receiverPrincipalId string
@description('Grant the gateway\'s identity Azure Service Bus Data Sender on the queue, to relay the sites\' messages.')
param relayFromGateway bool = true
@description('Deprecated: one identity shared by every site. Prefer the relay or siteSenderPrincipalIds.')
param senderPrincipalId string = ''
@description('Principal IDs of per-site identities that send to the queue themselves (Azure Service Bus Data Sender on the queue only).')
param siteSenderPrincipalIds array = []

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

resource relay 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (relayFromGateway) {
  name: guid(q.id, receiverPrincipalId, dataSender)
  scope: q
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataSender)
    principalId: receiverPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// One assignment per site identity, scoped to the queue: a site may send
// there and nowhere else, and receive nothing.
resource siteSend 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for p in siteSenderPrincipalIds: {
  name: guid(q.id, p, dataSender)
  scope: q
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', dataSender)
    principalId: p
    principalType: 'ServicePrincipal'
  }
}]

output endpoint string = ns.properties.serviceBusEndpoint
// $MODELFLEET_SERVICEBUS_NAMESPACE: the endpoint's host.
output namespace string = split(split(ns.properties.serviceBusEndpoint, '//')[1], ':')[0]
output queueName string = q.name
