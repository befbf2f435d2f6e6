#!/usr/bin/env bash
# Before provisioning (azd runs this as the preprovision hook; without azd, run it before
# `az deployment sub create`): create or update the API's Microsoft Entra app registration
# (app roles Orders.*, application ID URI, token version 2) and its service principal, then
# hand the client id and application ID URI to the deployment:
#   1. PATCH /applications(uniqueName='<key>') with Prefer: create-if-missing (an upsert, the
#      same client-provided key the Microsoft Graph Bicep extension uses): display name, sign-in
#      audience, app roles and the delegated scope from infra/entra/orders-api.json;
#   2. read the app's client id back (retried: a new app takes a moment to be readable);
#   3. PATCH the application ID URI (api://<client id> unless AUTH_API_IDENTIFIER_URI is set)
#      and the pre-authorized clients (a second call: they refer to the scope of step 1);
#   4. PATCH /servicePrincipals(appId='<client id>') with Prefer: create-if-missing
#      (retried while the new app replicates);
#   5. print AUTH_API_CLIENT_ID=... and AUTH_API_APP_ID_URI=..., and record them in the azd
#      environment (`azd env set`), from which main.parameters.json passes them to main.bicep.
# Every step is idempotent: a re-run changes nothing that is already as declared.
#
# Calls go to Microsoft Graph as whoever is signed in (lib/graph.sh): azd, else the Azure CLI.
# A user needs the right to register applications (the default for members, unless an
# administrator turned it off; else the Application Developer role) and, on later runs, to be
# an owner of the app; a service principal needs the Graph application permission
# Application.ReadWrite.OwnedBy. See infra/README.md, "The API's app registration".
#
# Variables (azd passes its environment):
#   AZURE_ENV_NAME, AZURE_SUBSCRIPTION_ID   together they key the registration (one per
#                                           environment and subscription)
# Optional:
#   AUTH_API_UNIQUE_NAME        the registration's key instead (e.g. to share one across
#                               environments, or to adopt an app given this uniqueName)
#   AUTH_API_IDENTIFIER_URI     application ID URI instead of api://<client id> (e.g. one on a
#                               verified domain)
#   AUTH_API_MANAGE=false       touch nothing in Microsoft Entra: an administrator created the
#                               registration; AUTH_API_CLIENT_ID and AUTH_API_APP_ID_URI must
#                               be set already
#   GRAPH_ATTEMPTS (default 12), GRAPH_RETRY_SECONDS (default 5): waiting for replication
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
# shellcheck source=lib/graph.sh
source "$repo_root/infra/scripts/lib/graph.sh"
MANIFEST="$repo_root/infra/entra/orders-api.json"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

attempts="${GRAPH_ATTEMPTS:-12}"
retry_seconds="${GRAPH_RETRY_SECONDS:-5}"

# Outside azd's hook the variables may still be in the azd environment.
if [[ -z "${AZURE_ENV_NAME:-}" ]] && command -v azd >/dev/null 2>&1; then
  if values="$(azd env get-values 2>/dev/null)"; then
    set -a
    eval "$values"
    set +a
  fi
fi

if [[ "${AUTH_API_MANAGE:-true}" == "false" ]]; then
  missing=()
  for name in AUTH_API_CLIENT_ID AUTH_API_APP_ID_URI; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    echo "preprovision: AUTH_API_MANAGE=false but ${missing[*]} not set: set the client id and application ID URI of the registration an administrator created (azd env set ...)" >&2
    exit 2
  fi
  echo "preprovision: AUTH_API_MANAGE=false: using app registration $AUTH_API_CLIENT_ID ($AUTH_API_APP_ID_URI) as it is" >&2
  exit 0
fi

unique_name="${AUTH_API_UNIQUE_NAME:-}"
if [[ -z "$unique_name" ]]; then
  missing=()
  for name in AZURE_ENV_NAME AZURE_SUBSCRIPTION_ID; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    echo "preprovision: missing ${missing[*]}: they name the API's app registration (set them, run inside an azd environment, or set AUTH_API_UNIQUE_NAME)" >&2
    exit 2
  fi
  # The subscription is hashed only to keep the key short; the environment name stays legible.
  suffix="$(printf '%s' "$AZURE_SUBSCRIPTION_ID" | python3 -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.read().lower().encode()).hexdigest()[:8])')"
  unique_name="orders-api-${AZURE_ENV_NAME}-${suffix}"
fi
if [[ ! "$unique_name" =~ ^[A-Za-z0-9._-]+$ ]]; then
  echo "preprovision: AUTH_API_UNIQUE_NAME may hold only letters, digits, '.', '_' and '-': $unique_name" >&2
  exit 2
fi
app_path="/v1.0/applications(uniqueName='${unique_name}')"

if ! graph_login; then
  cat >&2 <<'EOF'
preprovision: neither azd nor the Azure CLI can get a Microsoft Graph token.
  Sign in with `azd auth login` (or `az login`), then run `azd provision` again.
  Without rights to register applications, have an administrator create the registration
  (infra/README.md, "The API's app registration") and set AUTH_API_MANAGE=false.
EOF
  exit 3
fi

refused() {
  cat >&2 <<EOF
preprovision: Microsoft Graph refused $1 (the response is above).
  A user needs the right to register applications and, once it exists, to own it; a service
  principal needs the Graph application permission Application.ReadWrite.OwnedBy. Or have an
  administrator create the registration and set AUTH_API_MANAGE=false with AUTH_API_CLIENT_ID
  and AUTH_API_APP_ID_URI (infra/README.md, "The API's app registration").
EOF
}

# Request bodies from the manifest: the "$comment" and servicePrincipal keys are ours, not
# Graph's. Step 1 leaves out what refers to the app itself (identifier URI, pre-authorized
# clients), which step 3 adds once the app and its scope exist.
python3 - "$MANIFEST" "$work" "${AZURE_ENV_NAME:-$unique_name}" <<'PY'
import json
import sys
from pathlib import Path

manifest, work, environment = json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]), sys.argv[3]


def clean(node):
    if isinstance(node, dict):
        return {k: clean(v) for k, v in node.items() if not k.startswith("$")}
    if isinstance(node, list):
        return [clean(v) for v in node]
    return node


manifest = clean(manifest)
api = manifest["api"]
(work / "app.json").write_text(json.dumps({
    "displayName": f"{manifest['displayName']} ({environment})",
    "signInAudience": manifest["signInAudience"],
    "appRoles": manifest["appRoles"],
    "api": {k: v for k, v in api.items() if k != "preAuthorizedApplications"},
}))
(work / "api.json").write_text(json.dumps({"api": api}))
(work / "sp.json").write_text(json.dumps(manifest["servicePrincipal"]))
PY

# 1. The application (created if missing, else updated).
if ! graph PATCH "$app_path" "$work/app.json" create-if-missing >"$work/upsert.out"; then
  cat "$work/upsert.out" >&2
  refused "the app registration $unique_name"
  exit 4
fi

# 2. Its client id.
app_id=""
for ((attempt = 1; attempt <= attempts; attempt++)); do
  if graph GET "${app_path}?\$select=id,appId,identifierUris" >"$work/app.out" 2>"$work/app.err"; then
    app_id="$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1])).get("appId") or "")' "$work/app.out" 2>/dev/null || true)"
    if [[ -n "$app_id" ]]; then break; fi
  fi
  if ((attempt < attempts)); then sleep "$retry_seconds"; fi
done
if [[ -z "$app_id" ]]; then
  cat "$work/app.err" >&2
  refused "reading back the app registration $unique_name"
  exit 4
fi
app_id_uri="${AUTH_API_IDENTIFIER_URI:-api://$app_id}"

# 3. Application ID URI and pre-authorized clients.
python3 - "$work/api.json" "$app_id_uri" <<'PY'
import json
import sys
from pathlib import Path

path = Path(sys.argv[1])
body = json.loads(path.read_text())
body["identifierUris"] = [sys.argv[2]]
path.write_text(json.dumps(body))
PY
if ! graph PATCH "$app_path" "$work/api.json" >"$work/api.out"; then
  cat "$work/api.out" >&2
  refused "the application ID URI $app_id_uri"
  exit 4
fi

# 4. The service principal (what app roles are assigned on, and what tokens are issued for).
sp_done=false
for ((attempt = 1; attempt <= attempts; attempt++)); do
  if graph PATCH "/v1.0/servicePrincipals(appId='${app_id}')" "$work/sp.json" create-if-missing \
    >"$work/sp.out" 2>"$work/sp.err"; then
    sp_done=true
    break
  fi
  if ((attempt < attempts)); then sleep "$retry_seconds"; fi
done
if [[ "$sp_done" != true ]]; then
  cat "$work/sp.out" "$work/sp.err" >&2
  refused "the service principal of $app_id"
  exit 5
fi

# 5. Hand them to the deployment.
echo "AUTH_API_CLIENT_ID=$app_id"
echo "AUTH_API_APP_ID_URI=$app_id_uri"
# Recorded only where there is an azd environment to record them in (azd's hook, or a shell in
# an azd project); a plain `az deployment` run takes the printed values instead.
if command -v azd >/dev/null 2>&1 && azd env get-values >/dev/null 2>&1; then
  if ! azd env set AUTH_API_CLIENT_ID "$app_id" || ! azd env set AUTH_API_APP_ID_URI "$app_id_uri"; then
    echo "preprovision: could not record the app registration in the azd environment" >&2
    exit 6
  fi
  echo "preprovision: app registration $unique_name ready: client id $app_id, application ID URI $app_id_uri (recorded in the azd environment)" >&2
else
  echo "preprovision: app registration $unique_name ready; pass authApiClientId=$app_id authApiAppIdUri=$app_id_uri to the deployment" >&2
fi
