// Storage account for the Functions host (AzureWebJobsStorage: Event Hubs trigger
// checkpoints and leases, timers, host keys), the Flex Consumption deployment package,
// and the application's own blob containers declared in shared/topology.json
// (dead letters, checkpoints). Shared-key access is off: identities only.

@description('Name of the storage account (3-24 lowercase letters and digits).')
param name string

@description('Azure region of the account.')
param location string

@description('Tags applied to the account.')
param tags object

@description('Blob container that receives the Flex Consumption deployment package.')
param deploymentContainerName string

@description('Days a deleted blob or container can still be restored.')
param softDeleteRetentionDays int = 7

var topology = loadJsonContent('../../shared/topology.json')

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    accessTier: 'Hot'
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    dnsEndpointType: 'Standard'
    minimumTlsVersion: 'TLS1_2'
    publicNetworkAccess: 'Enabled'
    supportsHttpsTrafficOnly: true
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: softDeleteRetentionDays
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

// One container per entry of topology.json "storage" (dead letters, checkpoints, ...):
// a container added there is created here with no Bicep edit.
resource appContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [for entry in items(topology.storage): {
  parent: blobService
  name: entry.value
  properties: {
    publicAccess: 'None'
  }
}]

output name string = storage.name
output id string = storage.id
output blobEndpoint string = storage.properties.primaryEndpoints.blob
