#!/usr/bin/env bash
# Deploys pg-mcp to Azure (infra/main.bicep, subscription scope): resource group, PostgreSQL
# Flexible Server 17, Azure OpenAI embeddings, Key Vault, Container Apps app and setup job.
# Run `infra/deploy.sh --help` for the options. Requires the Azure CLI (`az login` first).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$HERE/main.bicep"

usage() {
  cat <<'USAGE'
usage: infra/deploy.sh --location REGION --prefix NAME --image IMAGE
                       --jwt-issuer ISS --jwt-audience AUD [options]

Required options:
  -l, --location REGION      Azure region, e.g. swedencentral
  -p, --prefix NAME          resource name prefix: 3-12 lowercase letters/digits, starting with a letter
  -i, --image IMAGE          pg-mcp image, e.g. myregistry.azurecr.io/pg-mcp:1.0.0
      --jwt-issuer ISS       required JWT issuer (iss)
      --jwt-audience AUD     required JWT audience (aud)

Other options:
  -g, --resource-group NAME  resource group (default rg-PREFIX)
      --registry SERVER      registry pulled with the managed identity (grant it AcrPull)
      --jwt-algorithms LIST  accepted algorithms (default RS256 with a public key, HS256 with a secret)
      --jwt-tenant-claim C   claim holding the RLS user id (default rls_user_id)
      --openai-location R    region of the Azure OpenAI account (default: --location)
      --client-ip IP         public IPv4 allowed through the PostgreSQL firewall (for psql)
      --seed-scale N         demo data loaded by the setup job (default 0: none)
      --min-replicas N       (default 1)     --max-replicas N   (default 5)
      --run-setup            start the setup job (migrate, seed, embed) after the deployment
      --what-if              show what would change, deploy nothing
  -h, --help                 this text

Secrets come from environment variables, never from the command line:
  POSTGRES_PASSWORD            PostgreSQL administrator password (8-128 chars, 3 of upper/lower/digit/symbol)
                               e.g. export POSTGRES_PASSWORD="$(openssl rand -base64 32)"
  PG_MCP_APP_PASSWORD          password of pgmcp_app          e.g. openssl rand -hex 32
  PG_MCP_TENANT_SIGNING_KEY    tenant signing key, >= 32 chars e.g. openssl rand -hex 32
  PG_MCP_ADMIN_TOKEN           admin bearer token, >= 32 chars e.g. openssl rand -hex 32
and one of
  PG_MCP_JWT_PUBLIC_KEY_FILE   path of the PEM public key that verifies the JWTs (RS*/ES*/PS*/EdDSA)
  PG_MCP_JWT_SECRET            HMAC secret for HS* JWTs        e.g. openssl rand -hex 32
Keep the same values across deployments: the signing key and the app password are stored in
the database by the setup job. They are written to Key Vault, which the app reads.
USAGE
}

die() { printf 'deploy: error: %s\n' "$*" >&2; exit 1; }
log() { printf 'deploy: %s\n' "$*" >&2; }

location="" prefix="" image="" resource_group="" registry="" jwt_issuer="" jwt_audience=""
jwt_algorithms="" jwt_tenant_claim="rls_user_id" openai_location="" client_ip=""
seed_scale="0" min_replicas="1" max_replicas="5" run_setup=false what_if=false

need_value() {
  if [ $# -lt 2 ] || [ -z "$2" ]; then die "option $1 needs a value (see --help)"; fi
}

while [ $# -gt 0 ]; do
  case "$1" in
    -l|--location) need_value "$@"; location="$2"; shift 2 ;;
    -p|--prefix) need_value "$@"; prefix="$2"; shift 2 ;;
    -i|--image) need_value "$@"; image="$2"; shift 2 ;;
    -g|--resource-group) need_value "$@"; resource_group="$2"; shift 2 ;;
    --registry) need_value "$@"; registry="$2"; shift 2 ;;
    --jwt-issuer) need_value "$@"; jwt_issuer="$2"; shift 2 ;;
    --jwt-audience) need_value "$@"; jwt_audience="$2"; shift 2 ;;
    --jwt-algorithms) need_value "$@"; jwt_algorithms="$2"; shift 2 ;;
    --jwt-tenant-claim) need_value "$@"; jwt_tenant_claim="$2"; shift 2 ;;
    --openai-location) need_value "$@"; openai_location="$2"; shift 2 ;;
    --client-ip) need_value "$@"; client_ip="$2"; shift 2 ;;
    --seed-scale) need_value "$@"; seed_scale="$2"; shift 2 ;;
    --min-replicas) need_value "$@"; min_replicas="$2"; shift 2 ;;
    --max-replicas) need_value "$@"; max_replicas="$2"; shift 2 ;;
    --run-setup) run_setup=true; shift ;;
    --what-if) what_if=true; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

# ---- Refuse to run without what the deployment needs --------------------------------------
missing=()
[ -n "$location" ] || missing+=("--location")
[ -n "$prefix" ] || missing+=("--prefix")
[ -n "$image" ] || missing+=("--image")
[ -n "$jwt_issuer" ] || missing+=("--jwt-issuer")
[ -n "$jwt_audience" ] || missing+=("--jwt-audience")
for var in POSTGRES_PASSWORD PG_MCP_APP_PASSWORD PG_MCP_TENANT_SIGNING_KEY PG_MCP_ADMIN_TOKEN; do
  [ -n "${!var:-}" ] || missing+=("\$$var")
done
if [ -z "${PG_MCP_JWT_PUBLIC_KEY_FILE:-}" ] && [ -z "${PG_MCP_JWT_SECRET:-}" ]; then
  missing+=("\$PG_MCP_JWT_PUBLIC_KEY_FILE or \$PG_MCP_JWT_SECRET")
fi
if [ ${#missing[@]} -gt 0 ]; then
  usage >&2
  die "missing: ${missing[*]}"
fi

[[ "$prefix" =~ ^[a-z][a-z0-9]{2,11}$ ]] || die "--prefix must be 3-12 lowercase letters or digits, starting with a letter"
[[ "$seed_scale" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--seed-scale must be a number"
[[ "$min_replicas" =~ ^[0-9]+$ && "$max_replicas" =~ ^[0-9]+$ ]] || die "--min-replicas/--max-replicas must be integers"
[ "$min_replicas" -le "$max_replicas" ] || die "--min-replicas must not exceed --max-replicas"
[ ${#PG_MCP_TENANT_SIGNING_KEY} -ge 32 ] || die "PG_MCP_TENANT_SIGNING_KEY must be at least 32 characters"
[ ${#PG_MCP_ADMIN_TOKEN} -ge 32 ] || die "PG_MCP_ADMIN_TOKEN must be at least 32 characters"
[ ${#PG_MCP_APP_PASSWORD} -ge 16 ] || die "PG_MCP_APP_PASSWORD must be at least 16 characters"
pw="$POSTGRES_PASSWORD"
if [ ${#pw} -lt 8 ] || [ ${#pw} -gt 128 ]; then die "POSTGRES_PASSWORD must be 8-128 characters"; fi
classes=0
[[ "$pw" =~ [A-Z] ]] && classes=$((classes + 1))
[[ "$pw" =~ [a-z] ]] && classes=$((classes + 1))
[[ "$pw" =~ [0-9] ]] && classes=$((classes + 1))
[[ "$pw" =~ [^A-Za-z0-9] ]] && classes=$((classes + 1))
[ "$classes" -ge 3 ] || die "POSTGRES_PASSWORD needs three of: upper case, lower case, digits, symbols (try: openssl rand -base64 32)"

jwt_secret="${PG_MCP_JWT_SECRET:-}"
jwt_public_key=""
if [ -n "${PG_MCP_JWT_PUBLIC_KEY_FILE:-}" ]; then
  [ -r "$PG_MCP_JWT_PUBLIC_KEY_FILE" ] || die "cannot read PG_MCP_JWT_PUBLIC_KEY_FILE=$PG_MCP_JWT_PUBLIC_KEY_FILE"
  jwt_public_key="$(cat "$PG_MCP_JWT_PUBLIC_KEY_FILE")"
  [[ "$jwt_public_key" == *"-----BEGIN "* ]] || die "$PG_MCP_JWT_PUBLIC_KEY_FILE is not a PEM file"
  [ -n "$jwt_algorithms" ] || jwt_algorithms="RS256"
else
  [ -n "$jwt_algorithms" ] || jwt_algorithms="HS256"
fi
[ -n "$resource_group" ] || resource_group="rg-$prefix"
[ -n "$openai_location" ] || openai_location="$location"

command -v az >/dev/null 2>&1 || die "the Azure CLI (az) is not installed"
az account show --output none 2>/dev/null || die "not logged in: run 'az login' (and 'az account set --subscription ...')"

# ---- Parameters file: secrets go through a private temporary file, not argv ----------------
json_string() {
  local s="$1"
  s="${s//\\/\\\\}"; s="${s//\"/\\\"}"
  s="${s//$'\n'/\\n}"; s="${s//$'\r'/\\r}"; s="${s//$'\t'/\\t}"
  printf '"%s"' "$s"
}
param() { printf '    "%s": { "value": %s }' "$1" "$2"; }

umask 077
params_file="$(mktemp "${TMPDIR:-/tmp}/pg-mcp-deploy.XXXXXX")"
trap 'rm -f "$params_file"' EXIT
{
  # shellcheck disable=SC2016  # "$schema" is a literal JSON key
  printf '{\n  "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#",\n'
  printf '  "contentVersion": "1.0.0.0",\n  "parameters": {\n'
  param location "$(json_string "$location")"; printf ',\n'
  param prefix "$(json_string "$prefix")"; printf ',\n'
  param resourceGroupName "$(json_string "$resource_group")"; printf ',\n'
  param image "$(json_string "$image")"; printf ',\n'
  param registryServer "$(json_string "$registry")"; printf ',\n'
  param jwtIssuer "$(json_string "$jwt_issuer")"; printf ',\n'
  param jwtAudience "$(json_string "$jwt_audience")"; printf ',\n'
  param jwtAlgorithms "$(json_string "$jwt_algorithms")"; printf ',\n'
  param jwtTenantClaim "$(json_string "$jwt_tenant_claim")"; printf ',\n'
  param openAiLocation "$(json_string "$openai_location")"; printf ',\n'
  param clientIpAddress "$(json_string "$client_ip")"; printf ',\n'
  param seedScale "$(json_string "$seed_scale")"; printf ',\n'
  param minReplicas "$min_replicas"; printf ',\n'
  param maxReplicas "$max_replicas"; printf ',\n'
  param postgresAdminPassword "$(json_string "$POSTGRES_PASSWORD")"; printf ',\n'
  param appPassword "$(json_string "$PG_MCP_APP_PASSWORD")"; printf ',\n'
  param tenantSigningKey "$(json_string "$PG_MCP_TENANT_SIGNING_KEY")"; printf ',\n'
  param adminToken "$(json_string "$PG_MCP_ADMIN_TOKEN")"; printf ',\n'
  param jwtSecret "$(json_string "$jwt_secret")"; printf ',\n'
  param jwtPublicKeyPem "$(json_string "$jwt_public_key")"; printf '\n'
  printf '  }\n}\n'
} >"$params_file"

deployment="pg-mcp-$prefix-$(date -u +%Y%m%d%H%M%S)"

if $what_if; then
  log "what-if for $deployment in $location (resource group $resource_group)"
  az deployment sub what-if --name "$deployment" --location "$location" \
    --template-file "$TEMPLATE" --parameters "@$params_file"
  exit 0
fi

log "deploying $deployment in $location (resource group $resource_group)"
az deployment sub create --name "$deployment" --location "$location" \
  --template-file "$TEMPLATE" --parameters "@$params_file" --output none

out() { az deployment sub show --name "$deployment" --query "properties.outputs.$1.value" --output tsv; }
mcp_url="$(out mcpUrl)"
job="$(out setupJobName)"
rg="$(out resourceGroupName)"
vault="$(out keyVaultName)"

if $run_setup; then
  log "starting the setup job $job (migrate, seed --scale $seed_scale, embed)"
  az containerapp job start --name "$job" --resource-group "$rg" --output none
  log "follow it with: az containerapp job execution list --name $job --resource-group $rg --output table"
fi

cat <<DONE
pg-mcp deployed.
  MCP endpoint   $mcp_url
  setup job      $job   (az containerapp job start --name $job --resource-group $rg)
  key vault      $vault
The first deployment needs the setup job (migrations, role password, signing key) before the
app reports ready: run it with --run-setup or the command above.
DONE
