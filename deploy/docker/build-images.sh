#!/usr/bin/env bash
# Builds the three images from source, the user's way (deploy/docker/Dockerfile: the builder stage
# compiles the services in Release), and checks that each runs as a non-root user.
#   deploy-platform/api-server, deploy-platform/s3-reverse-proxy, deploy-platform/build-runner
# The build context is the repository root as the root .dockerignore leaves it: what the builder
# stage compiles, never build trees, node_modules, .git or .env.
#
# Usage: deploy/docker/build-images.sh [--local-base-images] [--tag TAG]
#   --local-base-images   use the base images of deploy/docker/base-images.sh (made if missing)
#                         instead of Docker Hub's
#   --tag TAG             image tag (default: latest)
# Talks to the engine of DOCKER_HOST. Builds with --network host (works without a bridge too).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
tag=latest
build_args=()
while (($#)); do
  case "$1" in
    --local-base-images)
      "$repo_root/deploy/docker/base-images.sh"
      mapfile -t build_args < <("$repo_root/deploy/docker/base-images.sh" --print-build-args)
      ;;
    --tag)
      tag="${2:?--tag needs a value}"
      shift
      ;;
    -h | --help)
      sed -n '2,12p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "build-images.sh: unknown option '$1' (try --help)" >&2
      exit 2
      ;;
  esac
  shift
done

# Debian's docker.io (20.10) has no buildx: its legacy builder, unless the caller chose.
export DOCKER_BUILDKIT="${DOCKER_BUILDKIT:-0}"
cd "$repo_root"
for target in build-runner api-server s3-reverse-proxy; do
  started=$SECONDS
  docker build --quiet --force-rm --network host "${build_args[@]}" -f deploy/docker/Dockerfile \
    --target "$target" -t "deploy-platform/$target:$tag" . >/dev/null
  user="$(docker image inspect -f '{{.Config.User}}' "deploy-platform/$target:$tag")"
  size="$(docker image inspect -f '{{.Size}}' "deploy-platform/$target:$tag")"
  echo "build-images.sh: deploy-platform/$target:$tag $((size / 1000000)) MB, user $user," \
    "built in $((SECONDS - started)) s"
  if [[ -z $user || ${user%%:*} == 0 || ${user%%:*} == root ]]; then
    echo "build-images.sh: deploy-platform/$target runs as root" >&2
    exit 1
  fi
done
