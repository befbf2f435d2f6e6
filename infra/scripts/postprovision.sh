#!/usr/bin/env bash
# After `azd provision` (azd runs this as the postprovision hook) or after
# `az deployment sub create` (run it yourself with the variables below):
#   1. create the Function App identity's contained user in the SQL database and grant
#      it db_datareader, db_datawriter and EXECUTE (idempotent);
#   2. apply the schema migrations: python -m shared.sql.migrate.
# Both run as you, the SQL server's Microsoft Entra admin (Entra-only auth: no passwords).
#
# Variables (azd passes the deployment outputs as environment variables; without azd,
# export them from `az deployment sub show -n <name> --query properties.outputs`):
#   SQL_SERVER                    <server>.database.windows.net
#   SQL_DATABASE                  database name
#   AZURE_FUNCTION_IDENTITY_NAME  name of the Function App's user-assigned identity
# Optional:
#   AZURE_SQL_SERVER_NAME, AZURE_RESOURCE_GROUP  with `az` logged in: open the SQL firewall
#                                 to this machine's public IP first (SQL_OPEN_FIREWALL=false skips)
#   SQLCMD                        go-sqlcmd binary (default: sqlcmd on PATH)
#   PYTHON                        interpreter with requirements.txt installed
#                                 (default: .venv/bin/python, else python3)
#   SKIP_MIGRATIONS=true          only create the user
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$repo_root"

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

# A workstation's public address is not covered by "Allow Azure services".
if [[ "${SQL_OPEN_FIREWALL:-true}" == "true" && -n "${AZURE_SQL_SERVER_NAME:-}" && -n "${AZURE_RESOURCE_GROUP:-}" ]] \
  && command -v az >/dev/null 2>&1 && command -v curl >/dev/null 2>&1; then
  if client_ip="$(curl -fsS --max-time 10 https://api.ipify.org)" && [[ "$client_ip" =~ ^[0-9.]+$ ]]; then
    echo "postprovision: allowing $client_ip through the firewall of $AZURE_SQL_SERVER_NAME"
    az sql server firewall-rule create --only-show-errors --output none \
      --resource-group "$AZURE_RESOURCE_GROUP" --server "$AZURE_SQL_SERVER_NAME" \
      --name AllowDeployerClientIp --start-ip-address "$client_ip" --end-ip-address "$client_ip"
  else
    echo "postprovision: could not determine this machine's public IP; set SQL_CLIENT_IP and provision again if the connection is refused" >&2
  fi
fi

echo "postprovision: granting ${AZURE_FUNCTION_IDENTITY_NAME} access to ${SQL_DATABASE} on ${SQL_SERVER}"
# -S server, -d database, -b stop on error, -v scripting variable, -i script file.
"$sqlcmd_bin" -S "$SQL_SERVER" -d "$SQL_DATABASE" -b \
  --authentication-method ActiveDirectoryDefault \
  -v "APP_IDENTITY_NAME=${AZURE_FUNCTION_IDENTITY_NAME}" \
  -i "$repo_root/infra/scripts/sql/grant-app-identity.sql"

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
