// API Management in front of the Function App: the API is imported from
// infra/openapi.json (generated from the code), calls reach the app through a backend
// entity, and telemetry goes to Application Insights with the gateway's managed identity.
// The gateway validates each caller's Microsoft Entra token (validate-jwt against the tenant's
// OpenID configuration) and limits the call rate per token subject (rate-limit-by-key), both
// in apim-policy.xml; clients need no subscription key. The backend carries no credential:
// the functions are anonymous at the Functions level and the app checks the token again
// itself, so no host key is read or stored.

@description('Name of the API Management service.')
param name string

@description('Azure region of the service.')
param location string

@description('Tags applied to the service.')
param tags object

// Tiers with rate-limit-by-key (API Management policy reference: Developer, Basic, Basic v2,
// Standard, Standard v2, Premium); Consumption has only rate-limit, which counts per
// subscription key, not per caller.
@description('Pricing tier; Basic v2 is the smallest with an SLA and per-key rate limits.')
@allowed([
  'Developer'
  'BasicV2'
  'StandardV2'
  'Basic'
  'Standard'
  'Premium'
])
param sku string = 'BasicV2'

@description('Units of the tier.')
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

@description('Calls allowed per caller in each rate-limit period: per token subject, or per client IP address on the anonymous operations.')
param rateLimitCalls int = 300

@description('Length of the rate-limit period in seconds (at most 300).')
@maxValue(300)
param rateLimitPeriodSeconds int = 60

@description('OpenID configuration document of the token issuer (signing keys, issuer).')
param authOpenIdConfigUrl string

@description('Issuer the tokens must name: https://<login endpoint>/<tenant id>/v2.0.')
param authIssuer string

@description('Client id of the API\'s app registration (audience of v2 tokens).')
@minLength(36)
@maxLength(36)
param authApiClientId string

@description('Application ID URI of the API\'s app registration (the other accepted audience).')
@minLength(1)
param authApiAppIdUri string

var apiName = 'orders-api'
var backendId = 'orders-functions'
var monitoringMetricsPublisher = '3913510d-42f4-4e42-8a64-420c390055eb'

var originElements = [for origin in corsAllowedOrigins: '<origin>${origin}</origin>']
var policyLimits = replace(replace(replace(replace(loadTextContent('apim-policy.xml'), '__ALLOWED_ORIGINS__', join(originElements, '')), '__RATE_LIMIT_CALLS__', string(rateLimitCalls)), '__RATE_LIMIT_PERIOD__', string(rateLimitPeriodSeconds)), '__BACKEND_ID__', backendId)
var policyXml = replace(replace(replace(replace(replace(policyLimits, '__AUTH_OPENID_CONFIG_URL__', authOpenIdConfigUrl), '__AUTH_ISSUER__', authIssuer), '__AUTH_APP_ID_URI__', authApiAppIdUri), '__AUTH_CLIENT_ID__', authApiClientId), '__AUTH_TENANT_ID__', tenant().tenantId)

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
    capacity: skuCapacity
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
    // The bearer token identifies the caller; a subscription key would be a second, shared
    // credential that identifies no one.
    subscriptionRequired: false
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

output name string = apim.name
output gatewayUrl string = apim.properties.gatewayUrl
output apiUrl string = '${apim.properties.gatewayUrl}/${apiPath}'
