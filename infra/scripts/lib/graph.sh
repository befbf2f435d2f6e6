# shellcheck shell=bash
# Microsoft Graph REST calls for the azd hooks (sourced by preprovision.sh), with whichever CLI
# can get a Graph token, in the same order as lib/arm.sh:
#   - azd first: the identity that provisions, and the one login azd users are sure to have
#     (its token goes to curl on standard input, never on a command line);
#   - else the Azure CLI (`az rest`).
# A user gets delegated rights (what the directory lets that user do with applications); a
# service principal gets its Graph application permissions (Application.ReadWrite.OwnedBy).
#
#   graph_login                                choose the CLI; status 1 when neither has a token
#   graph METHOD PATH [BODY_FILE] [PREFER]     call $GRAPH_ENDPOINT$PATH, print the response body;
#                                              PREFER is sent as the Prefer header
#                                              (create-if-missing makes a PATCH an upsert)
#
# Optional: GRAPH_CLI=azd|az forces one; GRAPH_ENDPOINT for a national cloud; AZURE_TENANT_ID
# selects the tenant of azd's token.

GRAPH_ENDPOINT="${GRAPH_ENDPOINT:-https://graph.microsoft.com}"
graph_cli=""

_graph_azd_token() {
  local args=(auth token --output json --scope "${GRAPH_ENDPOINT}/.default")
  if [[ -n "${AZURE_TENANT_ID:-}" ]]; then args+=(--tenant-id "$AZURE_TENANT_ID"); fi
  azd "${args[@]}" 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' 2>/dev/null
}

graph_login() {
  if [[ "${GRAPH_CLI:-azd}" == "azd" ]] && command -v azd >/dev/null 2>&1 &&
    [[ -n "$(_graph_azd_token)" ]]; then
    graph_cli=azd
    return 0
  fi
  if [[ "${GRAPH_CLI:-az}" == "az" ]] && command -v az >/dev/null 2>&1 &&
    az account get-access-token --scope "${GRAPH_ENDPOINT}/.default" --only-show-errors \
      --output none >/dev/null 2>&1; then
    graph_cli=az
    return 0
  fi
  graph_cli=""
  return 1
}

graph() {
  local method="$1" path="$2" body="${3:-}" prefer="${4:-}"
  local url="${GRAPH_ENDPOINT}${path}"
  case "$graph_cli" in
    az)
      local args=(rest --only-show-errors --output json --method "$method" --url "$url"
        --resource "$GRAPH_ENDPOINT")
      if [[ -n "$body" ]]; then args+=(--body "@$body"); fi
      if [[ -n "$prefer" ]]; then args+=(--headers "Prefer=$prefer"); fi
      az "${args[@]}"
      ;;
    azd)
      local token
      token="$(_graph_azd_token)"
      if [[ -z "$token" ]]; then
        echo "graph: azd gave no token" >&2
        return 1
      fi
      local args=(--silent --show-error --fail-with-body --max-time 120 --request "$method" --config -)
      if [[ -n "$body" ]]; then
        args+=(--header "Content-Type: application/json" --data-binary "@$body")
      fi
      if [[ -n "$prefer" ]]; then args+=(--header "Prefer: $prefer"); fi
      printf 'header = "Authorization: Bearer %s"\n' "$token" | curl "${args[@]}" "$url"
      ;;
    *)
      echo "graph: no signed-in CLI (call graph_login first)" >&2
      return 1
      ;;
  esac
}
