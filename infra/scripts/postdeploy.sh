#!/usr/bin/env bash
# After the code is published (azd runs this as the postdeploy hook; without azd, run it
# after `func azure functionapp publish`): hand API Management the Function App's host key.
#   1. read the default host key from the running app (POST .../host/default/listkeys),
#      retrying while a freshly deployed host has not created its keys yet;
#   2. store it in API Management as the secret named value orders-functions-host-key;
#   3. make the backend orders-functions send it as the x-functions-key header;
#   4. record APIM_BACKEND_CREDENTIAL_EXISTS=true in the azd environment: from then on
#      provisioning declares that backend credential itself (the named value it refers to
#      exists), so `azd provision` does not drop it.
# Reading the key with listKeys() during provisioning failed on apps whose host had not
# started yet (no code deployed: Azure/azure-functions-host#5722, #6568); here the code runs.
# Run the script again after rotating the host key (`azd hooks run postdeploy`).
#
# Every call goes through ARM as whoever is signed in: azd (enough on its own), else the
# Azure CLI. The key never appears on a command line or in a file outside a private temp dir.
#
# Variables (azd passes the outputs; without azd, export them as for postprovision.sh):
#   AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_FUNCTION_APP_NAME, AZURE_APIM_NAME
# Optional:
#   HOST_KEY_ATTEMPTS (default 20) and HOST_KEY_RETRY_SECONDS (default 15): how long to wait
#   for the host's keys; AZURE_TENANT_ID: tenant of azd's token.
set -euo pipefail

# Must match apim.bicep's hostKeyNamedValue and backendId.
NAMED_VALUE=orders-functions-host-key
BACKEND=orders-functions
APIM_API_VERSION=2024-05-01
WEB_API_VERSION=2024-04-01

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=lib/arm.sh
source "$repo_root/infra/scripts/lib/arm.sh"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

required=(AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_FUNCTION_APP_NAME AZURE_APIM_NAME)

# Outside azd's hook the variables may still be in the azd environment.
for name in "${required[@]}"; do
  if [[ -z "${!name:-}" ]] && command -v azd >/dev/null 2>&1; then
    if values="$(azd env get-values 2>/dev/null)"; then
      set -a
      eval "$values"
      set +a
    fi
    break
  fi
done

missing=()
for name in "${required[@]}"; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  echo "postdeploy: missing ${missing[*]} (set them, or run inside an azd environment)" >&2
  exit 2
fi

if ! arm_login; then
  cat >&2 <<'EOF'
postdeploy: neither azd nor the Azure CLI is signed in, so API Management cannot get the
Function App's host key and the API answers 401. Sign in (azd auth login, or az login) and
run infra/scripts/postdeploy.sh (with azd: azd hooks run postdeploy).
EOF
  exit 3
fi

group="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP/providers"
site="$group/Microsoft.Web/sites/$AZURE_FUNCTION_APP_NAME"
apim="$group/Microsoft.ApiManagement/service/$AZURE_APIM_NAME"

json_field() { # json_field KEY1 KEY2 ... < json: the nested string value, or nothing
  python3 -c '
import json, sys
try:
    value = json.load(sys.stdin)
    for key in sys.argv[1:]:
        value = value[key]
except (ValueError, KeyError, TypeError):
    sys.exit(1)
if isinstance(value, str) and value.strip():
    print(value)
else:
    sys.exit(1)
' "$@"
}

# 1. The host key, once the host has created it.
attempts="${HOST_KEY_ATTEMPTS:-20}"
delay="${HOST_KEY_RETRY_SECONDS:-15}"
key=""
for ((attempt = 1; attempt <= attempts; attempt++)); do
  if arm POST "$site/host/default/listkeys?api-version=$WEB_API_VERSION" >"$work/keys.json" 2>"$work/keys.err"; then
    if key="$(json_field functionKeys default <"$work/keys.json")"; then
      break
    fi
    # Keys without a default function key: say so, without echoing the other keys.
    echo "the host answered without a default function key" >"$work/keys.err"
  else
    cat "$work/keys.json" >>"$work/keys.err" # an error response: no key in it
  fi
  rm -f "$work/keys.json"
  key=""
  if ((attempt < attempts)); then
    echo "postdeploy: host keys of $AZURE_FUNCTION_APP_NAME not available yet ($attempt/$attempts), retrying in ${delay}s"
    sleep "$delay"
  fi
done
rm -f "$work/keys.json"
if [[ -z "$key" ]]; then
  echo "postdeploy: no default host key from $AZURE_FUNCTION_APP_NAME after $attempts attempts:" >&2
  cat "$work/keys.err" >&2
  echo "Check that the app started (its logs in Application Insights), then run this script again." >&2
  exit 4
fi

# 2. The secret named value (written from standard input to a private file, never argv).
printf '%s' "$key" | python3 -c '
import json, sys
name, path = sys.argv[1], sys.argv[2]
body = {"properties": {"displayName": name, "secret": True, "value": sys.stdin.read()}}
with open(path, "w") as out:
    json.dump(body, out)
' "$NAMED_VALUE" "$work/named-value.json"
key=""
echo "postdeploy: storing the host key in $AZURE_APIM_NAME as the secret named value $NAMED_VALUE (signed in with $arm_cli)"
if ! arm PUT "$apim/namedValues/$NAMED_VALUE?api-version=$APIM_API_VERSION" "$work/named-value.json" >"$work/out" 2>&1; then
  echo "postdeploy: API Management refused the named value:" >&2
  cat "$work/out" >&2
  exit 5
fi
rm -f "$work/named-value.json"

# Creating a named value is asynchronous; the backend may refer to it once it exists.
state=""
for ((attempt = 1; attempt <= 30; attempt++)); do
  state="$(arm GET "$apim/namedValues/$NAMED_VALUE?api-version=$APIM_API_VERSION" 2>/dev/null |
    json_field properties provisioningState || true)"
  if [[ "$state" == [Ss]ucceeded ]]; then break; fi
  sleep "${NAMED_VALUE_POLL_SECONDS:-5}"
done
if [[ "$state" != [Ss]ucceeded ]]; then
  echo "postdeploy: the named value $NAMED_VALUE is not ready (state: ${state:-unknown})" >&2
  exit 5
fi

# 3. The backend sends it.
printf '{"properties":{"credentials":{"header":{"x-functions-key":["{{%s}}"]}}}}' "$NAMED_VALUE" \
  >"$work/backend.json"
echo "postdeploy: backend $BACKEND sends x-functions-key from {{$NAMED_VALUE}}"
if ! arm PATCH "$apim/backends/$BACKEND?api-version=$APIM_API_VERSION" "$work/backend.json" >"$work/out" 2>&1; then
  echo "postdeploy: API Management refused the backend update:" >&2
  cat "$work/out" >&2
  exit 6
fi

# 4. Later provisioning keeps the credential.
if [[ -n "${AZURE_ENV_NAME:-}" ]] && command -v azd >/dev/null 2>&1 &&
  azd env set APIM_BACKEND_CREDENTIAL_EXISTS true >/dev/null 2>&1; then
  echo "postdeploy: azd env APIM_BACKEND_CREDENTIAL_EXISTS=true"
else
  echo "postdeploy: from now on deploy main.bicep with apimBackendCredentialExists=true, or the backend loses its credential until this script runs again"
fi
echo "postdeploy: done"
