#!/usr/bin/env bash
# Writes .env at the repository root for docker-compose.yml: deploy/docker/compose.env.example with
# its secrets generated (API_TOKENS, MINIO_ROOT_PASSWORD, REDIS_PASSWORD, PLATFORM_KEY: openssl
# rand -hex), readable by its owner only. An existing .env keeps every value it has; only the
# secrets it lacks or leaves empty are added (an older .env gains REDIS_PASSWORD, PLATFORM_KEY so).
#
# Usage: deploy/docker/compose-env.sh   (the API's bearer token is then API_TOKENS in .env)
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
env_file="$repo_root/.env"
case "${1:-}" in
  "") ;;
  -h | --help)
    sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "compose-env.sh: unknown option '$1' (try --help)" >&2
    exit 2
    ;;
esac
command -v openssl >/dev/null 2>&1 || {
  echo "compose-env.sh: openssl is missing" >&2
  exit 1
}

umask 077
[[ -e $env_file ]] || cp "$repo_root/deploy/docker/compose.env.example" "$env_file"
chmod 600 "$env_file"
for name in API_TOKENS MINIO_ROOT_PASSWORD REDIS_PASSWORD PLATFORM_KEY; do
  grep -q "^$name=." "$env_file" && continue
  # The platform key is an AES-256 key: 32 bytes.
  value="$(openssl rand -hex "$([[ $name == PLATFORM_KEY ]] && echo 32 || echo 24)")"
  if grep -q "^$name=" "$env_file"; then
    sed -i "s/^$name=\$/$name=$value/" "$env_file"
  else
    echo "$name=$value" >>"$env_file"
  fi
  echo "compose-env.sh: $name generated"
done
echo "compose-env.sh: $env_file has its secrets"
