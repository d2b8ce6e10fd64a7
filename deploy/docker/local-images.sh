#!/usr/bin/env bash
# Makes the images deploy/docker/compose.local.yml puts in place of the two that docker-compose.yml
# pulls, where no image registry can be reached (deploy/docker/Dockerfile.local):
#   deploy-platform/redis:local    Debian's redis-server
#   deploy-platform/s3rver:local   s3rver (npm, the version package-lock.json pins) on Node 20
# and first the base images of deploy/docker/base-images.sh. s3rver is installed by this host's
# npm, so that its registry and certificate authorities are the host's. Builds with --network host.
# Talks to the engine of DOCKER_HOST; base-images.sh needs root the first time.
#
# Usage: deploy/docker/local-images.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
s3rver_version=3.7.1
case "${1:-}" in
  "") ;;
  -h | --help)
    sed -n '2,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
  *)
    echo "local-images.sh: unknown option '$1' (try --help)" >&2
    exit 2
    ;;
esac
command -v npm >/dev/null 2>&1 || {
  echo "local-images.sh: npm is missing (deploy/setup.sh installs it)" >&2
  exit 1
}

"$repo_root/deploy/docker/base-images.sh"
mapfile -t build_args < <("$repo_root/deploy/docker/base-images.sh" --print-build-args)

work="$(mktemp -d "${TMPDIR:-/tmp}/dp-local-images.XXXXXX")"
trap 'rm -rf "$work"' EXIT
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"
for target in redis s3rver; do
  started=$SECONDS
  if [[ $target == s3rver ]]; then
    mkdir -p "$work/s3rver"
    echo '{"private":true}' >"$work/s3rver/package.json"
    npm install --silent --prefix "$work/s3rver" --omit=dev --no-fund --no-audit \
      "s3rver@$s3rver_version" >/dev/null
  fi
  docker build --quiet --force-rm --network host "${build_args[@]}" \
    -f "$repo_root/deploy/docker/Dockerfile.local" --target "$target" \
    -t "deploy-platform/$target:local" "$work" >/dev/null
  size="$(docker image inspect -f '{{.Size}}' "deploy-platform/$target:local")"
  echo "local-images.sh: deploy-platform/$target:local $((size / 1000000)) MB," \
    "built in $((SECONDS - started)) s"
done
