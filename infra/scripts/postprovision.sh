#!/usr/bin/env bash
# After `azd provision` (azd runs this as the postprovision hook) or after
# `az deployment sub create` (run it yourself with the variables below):
#   1. open the SQL firewall to this machine's public IP (a workstation is not covered by
#      "Allow Azure services");
#   2. create the Function App identity's contained user in the SQL database and grant
#      it db_datareader, db_datawriter and EXECUTE (idempotent);
#   3. apply the schema migrations: python -m shared.sql.migrate.
# Steps 2 and 3 run as you, the SQL server's Microsoft Entra admin (Entra-only auth: no
# passwords), through sqlcmd's and the Azure SDK's default credential chain.
#
# Variables (azd passes the deployment outputs as environment variables; without azd,
# export them from `az deployment sub show -n <name> --query properties.outputs`):
#   SQL_SERVER                    <server>.database.windows.net
#   SQL_DATABASE                  database name
#   AZURE_FUNCTION_IDENTITY_NAME  name of the Function App's user-assigned identity
# Optional:
#   AZURE_SUBSCRIPTION_ID, AZURE_RESOURCE_GROUP, AZURE_SQL_SERVER_NAME
#                                 for step 1, which goes through ARM as whoever is signed in:
#                                 azd (enough on its own), else the Azure CLI; with neither,
#                                 step 1 is skipped with a message (SQL_OPEN_FIREWALL=false
#                                 always skips it)
#   SQLCMD                        go-sqlcmd binary (default: sqlcmd on PATH)
#   PYTHON                        interpreter with requirements.txt installed
#                                 (default: .venv/bin/python, else python3)
#   SKIP_MIGRATIONS=true          only create the user
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"
# shellcheck source=lib/arm.sh
source "$repo_root/infra/scripts/lib/arm.sh"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# Outside azd's hook the variables may still be in the azd environment.
if [[ -z "${SQL_SERVER:-}" || -z "${AZURE_FUNCTION_IDENTITY_NAME:-}" ]] && command -v azd >/dev/null 2>&1; then
  if values="$(azd env get-values 2>/dev/null)"; then
    set -a
    eval "$values"
    set +a
  fi
fi

missing=()
for name in SQL_SERVER SQL_DATABASE AZURE_FUNCTION_IDENTITY_NAME; do
  [[ -n "${!name:-}" ]] || missing+=("$name")
done
if ((${#missing[@]})); then
  echo "postprovision: missing ${missing[*]} (set them, or run inside an azd environment)" >&2
  exit 2
fi

sqlcmd_bin="${SQLCMD:-sqlcmd}"
if ! command -v "$sqlcmd_bin" >/dev/null 2>&1 || ! "$sqlcmd_bin" --help 2>&1 | grep -q -- "--authentication-method"; then
  cat >&2 <<'EOF'
postprovision: go-sqlcmd is required (the Go sqlcmd, with --authentication-method):
  macOS:   brew install sqlcmd
  Windows: winget install sqlcmd
  Linux:   https://learn.microsoft.com/sql/tools/sqlcmd/sqlcmd-download-install
Then run infra/scripts/postprovision.sh again.
EOF
  exit 3
fi

# Step 1. Not fatal: if the rule cannot be made, sqlcmd reports a refused connection below.
skip_firewall() {
  cat >&2 <<EOF
postprovision: not opening the SQL firewall to this machine: $1.
  If the connection below is refused: azd env set SQL_CLIENT_IP <this machine's IPv4>, then
  azd provision (or sign in with 'azd auth login' or 'az login' and run this script again).
EOF
}

open_firewall() {
  local missing=() name client_ip rule
  for name in AZURE_SUBSCRIPTION_ID AZURE_RESOURCE_GROUP AZURE_SQL_SERVER_NAME; do
    [[ -n "${!name:-}" ]] || missing+=("$name")
  done
  if ((${#missing[@]})); then
    skip_firewall "${missing[*]} not set"
    return 0
  fi
  if ! arm_login; then
    skip_firewall "neither azd nor the Azure CLI is signed in"
    return 0
  fi
  if ! client_ip="$(curl -fsS --max-time 10 https://api.ipify.org)" ||
    ! [[ "$client_ip" =~ ^[0-9]{1,3}(\.[0-9]{1,3}){3}$ ]]; then
    skip_firewall "its public IPv4 address could not be determined"
    return 0
  fi
  printf '{"properties":{"startIpAddress":"%s","endIpAddress":"%s"}}' "$client_ip" "$client_ip" \
    >"$work/firewall-rule.json"
  rule="/subscriptions/$AZURE_SUBSCRIPTION_ID/resourceGroups/$AZURE_RESOURCE_GROUP"
  rule+="/providers/Microsoft.Sql/servers/$AZURE_SQL_SERVER_NAME/firewallRules/AllowDeployerClientIp"
  echo "postprovision: allowing $client_ip through the firewall of $AZURE_SQL_SERVER_NAME (signed in with $arm_cli)"
  if ! arm PUT "$rule?api-version=2023-08-01" "$work/firewall-rule.json" >"$work/firewall-rule.out" 2>&1; then
    echo "postprovision: the firewall rule was refused:" >&2
    cat "$work/firewall-rule.out" >&2
  fi
}

if [[ "${SQL_OPEN_FIREWALL:-true}" == "true" ]]; then
  open_firewall
fi

# Step 2.
echo "postprovision: granting ${AZURE_FUNCTION_IDENTITY_NAME} access to ${SQL_DATABASE} on ${SQL_SERVER}"
# -S server, -d database, -b stop on error, -v scripting variable, -i script file.
if ! "$sqlcmd_bin" -S "$SQL_SERVER" -d "$SQL_DATABASE" -b \
  --authentication-method ActiveDirectoryDefault \
  -v "APP_IDENTITY_NAME=${AZURE_FUNCTION_IDENTITY_NAME}" \
  -i "$repo_root/infra/scripts/sql/grant-app-identity.sql"; then
  cat >&2 <<EOF
postprovision: creating the database user failed.
  - Msg 33134 "Server identity is not configured", or "Principal ... could not be resolved",
    while signed in as a service principal: the SQL server identity (principal id
    ${AZURE_SQL_SERVER_IDENTITY_PRINCIPAL_ID:-in the output AZURE_SQL_SERVER_IDENTITY_PRINCIPAL_ID})
    needs Microsoft Graph read permissions, granted once by a tenant administrator; see
    infra/README.md, "SQL users and a service principal deployer".
  - A refused connection: see the firewall message above (SQL_CLIENT_IP).
EOF
  exit 4
fi

# Step 3.
if [[ "${SKIP_MIGRATIONS:-false}" == "true" ]]; then
  echo "postprovision: SKIP_MIGRATIONS=true, migrations not applied"
  exit 0
fi

python_bin="${PYTHON:-}"
if [[ -z "$python_bin" ]]; then
  if [[ -x "$repo_root/.venv/bin/python" ]]; then python_bin="$repo_root/.venv/bin/python"; else python_bin=python3; fi
fi

echo "postprovision: applying migrations with $python_bin -m shared.sql.migrate"
# SQL_CONNECTION_STRING (the Docker path's password login) would win over SQL_SERVER.
env -u SQL_CONNECTION_STRING -u SQLITE_PATH \
  SQL_SERVER="$SQL_SERVER" SQL_DATABASE="$SQL_DATABASE" \
  "$python_bin" -m shared.sql.migrate
echo "postprovision: done"
