// API Management in front of the Function App: the API is imported from
// infra/openapi.json (generated from the code), calls reach the app through a backend
// entity, and telemetry goes to Application Insights with the gateway's managed identity.
// The backend carries no credential: the functions are anonymous at the Functions level and
// the app checks each caller's Microsoft Entra token itself, so no host key is read or stored.

@description('Name of the API Management service.')
param name string

@description('Azure region of the service.')
param location string

@description('Tags applied to the service.')
param tags object

@description('Pricing tier. Consumption is serverless (no fixed cost, scales to zero).')
@allowed([
  'Consumption'
  'Developer'
  'BasicV2'
  'StandardV2'
  'Basic'
  'Standard'
  'Premium'
])
param sku string = 'Consumption'

@description('Units of the tier; ignored (0) for Consumption.')
param skuCapacity int = 1

@description('E-mail address of the API publisher (required by API Management).')
param publisherEmail string

@description('Display name of the API publisher.')
param publisherName string

@description('Name of the Function App behind the gateway.')
param functionAppName string

@description('Name of the Application Insights component receiving gateway telemetry.')
param applicationInsightsName string

@description('URL suffix of the API on the gateway; the Function App serves the same routes under /api.')
param apiPath string = 'api'

@description('Origins allowed by the CORS policy; [\'*\'] allows any origin (no credentials are sent cross-origin).')
param corsAllowedOrigins array = [
  '*'
]

@description('Calls allowed per subscription key in each rate-limit period.')
param rateLimitCalls int = 300

@description('Length of the rate-limit period in seconds (at most 300).')
@maxValue(300)
param rateLimitPeriodSeconds int = 60

var apiName = 'orders-api'
var backendId = 'orders-functions'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

var originElements = [for origin in corsAllowedOrigins: '<origin>${origin}</origin>']
var policyXml = replace(replace(replace(replace(loadTextContent('apim-policy.xml'), '__ALLOWED_ORIGINS__', join(originElements, '')), '__RATE_LIMIT_CALLS__', string(rateLimitCalls)), '__RATE_LIMIT_PERIOD__', string(rateLimitPeriodSeconds)), '__BACKEND_ID__', backendId)

resource functionApp 'Microsoft.Web/sites@2024-04-01' existing = {
  name: functionAppName
}

resource applicationInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: applicationInsightsName
}

resource apim 'Microsoft.ApiManagement/service@2024-05-01' = {
  name: name
  location: location
  tags: tags
  sku: {
    name: sku
    capacity: sku == 'Consumption' ? 0 : skuCapacity
  }
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    publisherEmail: publisherEmail
    publisherName: publisherName
    customProperties: {
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls10': 'false'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Protocols.Tls11': 'false'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls10': 'false'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Tls11': 'false'
      'Microsoft.WindowsAzure.ApiManagement.Gateway.Security.Backend.Protocols.Ssl30': 'false'
    }
  }
}

// The gateway's identity sends telemetry to the (local-auth-disabled) component.
resource apimTelemetry 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(applicationInsights.id, apim.id, monitoringMetricsPublisher)
  scope: applicationInsights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', monitoringMetricsPublisher)
    principalId: apim.identity.principalId
    principalType: 'ServicePrincipal'
  }
}

resource logger 'Microsoft.ApiManagement/service/loggers@2024-05-01' = {
  parent: apim
  name: 'appinsights'
  properties: {
    loggerType: 'applicationInsights'
    description: 'Application Insights (managed identity)'
    resourceId: applicationInsights.id
    isBuffered: true
    credentials: {
      connectionString: applicationInsights.properties.ConnectionString
      identityClientId: 'SystemAssigned'
    }
  }
  dependsOn: [
    apimTelemetry
  ]
}

resource backend 'Microsoft.ApiManagement/service/backends@2024-05-01' = {
  parent: apim
  name: backendId
  properties: {
    description: 'Function App ${functionApp.name}'
    protocol: 'http'
    url: 'https://${functionApp.properties.defaultHostName}/api'
    tls: {
      validateCertificateChain: true
      validateCertificateName: true
    }
  }
}

resource api 'Microsoft.ApiManagement/service/apis@2024-05-01' = {
  parent: apim
  name: apiName
  properties: {
    displayName: 'Orders API'
    path: apiPath
    protocols: [
      'https'
    ]
    subscriptionRequired: true
    format: 'openapi+json'
    value: loadTextContent('../openapi.json')
    // Required query parameters stay query parameters: the default ('template') turns them
    // into URL template segments, and a call without one then gets API Management's 404
    // instead of the app's 400 problem response.
    translateRequiredQueryParameters: 'query'
    serviceUrl: 'https://${functionApp.properties.defaultHostName}/api'
  }
}

resource apiPolicy 'Microsoft.ApiManagement/service/apis/policies@2024-05-01' = {
  parent: api
  name: 'policy'
  properties: {
    format: 'xml'
    value: policyXml
  }
  dependsOn: [
    backend
  ]
}

resource apiDiagnostics 'Microsoft.ApiManagement/service/apis/diagnostics@2024-05-01' = {
  parent: api
  name: 'applicationinsights'
  properties: {
    loggerId: logger.id
    alwaysLog: 'allErrors'
    httpCorrelationProtocol: 'W3C'
    logClientIp: true
    verbosity: 'information'
    sampling: {
      samplingType: 'fixed'
      percentage: 100
    }
    frontend: {
      request: {
        headers: [
          'X-Correlation-Id'
        ]
      }
      response: {
        headers: [
          'X-Correlation-Id'
        ]
      }
    }
    backend: {
      request: {
        headers: [
          'X-Correlation-Id'
        ]
      }
      response: {
        headers: [
          'X-Correlation-Id'
        ]
      }
    }
  }
}

// A subscription scoped to this API for the first client; its keys are read with
// `az rest` (infra/README.md), never output by the deployment.
resource clientSubscription 'Microsoft.ApiManagement/service/subscriptions@2024-05-01' = {
  parent: apim
  name: 'orders-clients'
  properties: {
    displayName: 'Orders API clients'
    scope: '/apis/${api.name}'
    state: 'active'
    allowTracing: false
  }
}

output name string = apim.name
output gatewayUrl string = apim.properties.gatewayUrl
output apiUrl string = '${apim.properties.gatewayUrl}/${apiPath}'
output subscriptionName string = clientSubscription.name
