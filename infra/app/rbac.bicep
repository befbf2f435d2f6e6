// Azure RBAC data-plane roles for the Function App identity and (optionally) the
// deploying user, each scoped to the one resource it is needed on. Cosmos DB data
// roles are not Azure RBAC roles: they live in cosmos.bicep.

@description('Object id of the Function App identity.')
param appPrincipalId string

@description('Object id of the deploying user or CI principal; empty for none.')
param userPrincipalId string = ''

@description('Principal type of userPrincipalId.')
@allowed([
  'User'
  'ServicePrincipal'
  'Group'
])
param userPrincipalType string = 'User'

@description('Name of the storage account.')
param storageAccountName string

@description('Name of the Event Hubs namespace.')
param eventHubsNamespaceName string

@description('Name of the Application Insights component.')
param applicationInsightsName string

// Built-in role definition ids (https://learn.microsoft.com/azure/role-based-access-control/built-in-roles).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  eventHubsDataSender: '2b629674-e913-4c01-ae53-ef4638d8f975'
  eventHubsDataReceiver: 'a638d3c7-ab3a-418d-83e6-5f17a39d4fde'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// The host (AzureWebJobsStorage: checkpoints, leases, host keys) and Flex deployment
// need Blob Data Owner; the table role as the Functions identity docs list it. No queue
// role: no trigger or binding here uses a queue (the Event Hubs and timer triggers keep
// their state in blobs, and there is no blob trigger or Durable Functions).
var appStorageRoles = [
  roles.storageBlobDataOwner
  roles.storageTableDataContributor
]

var appEventHubsRoles = [
  roles.eventHubsDataSender
  roles.eventHubsDataReceiver
]

var hasUser = !empty(userPrincipalId)
var userEventHubsRoles = hasUser ? appEventHubsRoles : []

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: storageAccountName
}

resource eventHubsNamespace 'Microsoft.EventHub/namespaces@2024-01-01' existing = {
  name: eventHubsNamespaceName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource appStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in appStorageRoles: {
  name: guid(storage.id, appPrincipalId, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appEventHubs 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in appEventHubsRoles: {
  name: guid(eventHubsNamespace.id, appPrincipalId, roleId)
  scope: eventHubsNamespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}]

resource appTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, appPrincipalId, roles.monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
    principalId: appPrincipalId
    principalType: 'ServicePrincipal'
  }
}

// The deploying user can run the app locally against the Azure resources.
resource userStorage 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (hasUser) {
  name: guid(storage.id, userPrincipalId, roles.storageBlobDataContributor)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}

resource userEventHubs 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in userEventHubsRoles: {
  name: guid(eventHubsNamespace.id, userPrincipalId, roleId)
  scope: eventHubsNamespace
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: userPrincipalId
    principalType: userPrincipalType
  }
}]
