# shellcheck shell=bash
# Azure Resource Manager REST calls for the azd hooks (sourced by postprovision.sh and
# postdeploy.sh), with whichever CLI is signed in:
#   - azd first: the identity that provisioned, and the one login azd users are sure to have
#     (its token goes to curl on standard input, never on a command line);
#   - else the Azure CLI (`az rest`), if `az account show` succeeds.
# Every path names its subscription, so neither CLI's default subscription matters.
#
#   arm_login                      choose the CLI; status 1 when neither is signed in
#   arm METHOD PATH [BODY_FILE]    call $ARM_ENDPOINT$PATH, print the response body; a body is
#                                  read from a file so that a secret in it stays off the
#                                  command line; PATCH sends If-Match: *
#
# Optional: ARM_CLI=azd|az forces one; ARM_ENDPOINT for a sovereign cloud; AZURE_TENANT_ID
# selects the tenant of azd's token.

ARM_ENDPOINT="${ARM_ENDPOINT:-https://management.azure.com}"
arm_cli=""

_arm_azd_token() {
  local args=(auth token --output json --scope "${ARM_ENDPOINT}/.default")
  if [[ -n "${AZURE_TENANT_ID:-}" ]]; then args+=(--tenant-id "$AZURE_TENANT_ID"); fi
  azd "${args[@]}" 2>/dev/null |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])' 2>/dev/null
}

arm_login() {
  if [[ "${ARM_CLI:-azd}" == "azd" ]] && command -v azd >/dev/null 2>&1 &&
    [[ -n "$(_arm_azd_token)" ]]; then
    arm_cli=azd
    return 0
  fi
  if [[ "${ARM_CLI:-az}" == "az" ]] && command -v az >/dev/null 2>&1 &&
    az account show --only-show-errors --output none >/dev/null 2>&1; then
    arm_cli=az
    return 0
  fi
  arm_cli=""
  return 1
}

arm() {
  local method="$1" path="$2" body="${3:-}"
  local url="${ARM_ENDPOINT}${path}"
  case "$arm_cli" in
    az)
      local args=(rest --only-show-errors --output json --method "$method" --url "$url")
      if [[ -n "$body" ]]; then args+=(--body "@$body"); fi
      if [[ "$method" == "PATCH" ]]; then args+=(--headers "If-Match=*"); fi
      az "${args[@]}"
      ;;
    azd)
      local token
      token="$(_arm_azd_token)"
      if [[ -z "$token" ]]; then
        echo "arm: azd gave no token" >&2
        return 1
      fi
      local args=(--silent --show-error --fail-with-body --max-time 120 --request "$method" --config -)
      if [[ -n "$body" ]]; then
        args+=(--header "Content-Type: application/json" --data-binary "@$body")
      elif [[ "$method" == "POST" ]]; then
        args+=(--data-binary "") # ARM answers 411 to a POST without Content-Length
      fi
      if [[ "$method" == "PATCH" ]]; then args+=(--header "If-Match: *"); fi
      printf 'header = "Authorization: Bearer %s"\n' "$token" | curl "${args[@]}" "$url"
      ;;
    *)
      echo "arm: no signed-in CLI (call arm_login first)" >&2
      return 1
      ;;
  esac
}
