// Event Hubs namespace, the domain-events hub and one consumer group per projection,
// all read from shared/topology.json. SAS (local) auth is off: identities only.
// Standard tier: Basic allows only the $Default consumer group.

@description('Name of the Event Hubs namespace.')
param name string

@description('Azure region of the namespace.')
param location string

@description('Tags applied to the namespace.')
param tags object

@description('Throughput units of the Standard namespace.')
@minValue(1)
@maxValue(20)
param capacity int = 1

@description('Partitions of the hub (the local event log and the emulator use shared/topology.json\'s count instead).')
@minValue(1)
@maxValue(32)
param partitionCount int = 16

@description('Days events stay in the hub; projections can be rebuilt from the SQL outbox beyond that.')
@minValue(1)
@maxValue(7)
param messageRetentionInDays int = 7

var topology = loadJsonContent('../../shared/topology.json')

resource namespace 'Microsoft.EventHub/namespaces@2024-01-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: 'Standard'
    tier: 'Standard'
    capacity: capacity
  }
  properties: {
    disableLocalAuth: true
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    isAutoInflateEnabled: false
  }
}

resource hub 'Microsoft.EventHub/namespaces/eventhubs@2024-01-01' = {
  parent: namespace
  name: topology.eventHub.name
  properties: {
    partitionCount: partitionCount
    messageRetentionInDays: messageRetentionInDays
  }
}

// One consumer group per projection: each keeps its own checkpoints, so a slow or
// rebuilt projection never holds back the others.
resource consumerGroups 'Microsoft.EventHub/namespaces/eventhubs/consumergroups@2024-01-01' = [for group in topology.eventHub.consumerGroups: {
  parent: hub
  name: group
  properties: {
    userMetadata: 'projection ${group}'
  }
}]

output name string = namespace.name
output id string = namespace.id
// The host name from the namespace's own endpoint (https://<namespace>.<suffix>:443/), so
// the suffix is the cloud's, not a constant: split on '/' gives the authority, then drop a port.
output fullyQualifiedNamespace string = split(split(namespace.properties.serviceBusEndpoint, '/')[2], ':')[0]
output eventHubName string = hub.name
