#!/usr/bin/env python3
"""Checks the packaging that cannot run here (no Docker engine, no AWS): docker-compose.yml,
deploy/docker/Dockerfile and deploy/ecs/ against the real binaries' --help, which is the contract
for setting names, flags and subcommands. Standard library plus PyYAML (python3-yaml).

Usage: check_packaging.py --source DIR --api-server BIN --build-runner BIN --s3-reverse-proxy BIN
Prints one line per problem and exits 1 if there is any."""
import argparse
import json
import pathlib
import re
import shlex
import subprocess
import sys

problems = []


def problem(where, what):
    problems.append(f"{where}: {what}")


class binary_help:
    """Settings, flags and subcommands as one binary's --help prints them."""

    def __init__(self, path):
        text = subprocess.run([path, "--help"], check=True, capture_output=True, text=True,
                              timeout=30).stdout
        self.env = {}  # ENV -> secret?
        self.flags = {}  # --flag -> takes a value?
        lines = text.splitlines()
        for i, line in enumerate(lines):
            m = re.fullmatch(r"  (?:([A-Z][A-Z0-9_]*), )?(--[a-z0-9-]+)( <value>)?", line)
            if not m:
                continue
            detail = lines[i + 1] if i + 1 < len(lines) else ""
            if m.group(1):
                self.env[m.group(1)] = "(secret;" in detail
            self.flags[m.group(2)] = bool(m.group(3))
        usage = next((l for l in lines if l.startswith("Usage: ")), "")
        # Bare words of the usage line are subcommands, except the placeholder after a flag.
        self.subcommands = set()
        after_flag = False
        for tok in re.findall(r"[^\s\[\]|]+", usage.split(" ", 2)[2] if usage.count(" ") >= 2 else ""):
            if tok.startswith("--"):
                after_flag = True
            elif tok.startswith("<") or tok.startswith("[") or tok == "...":
                after_flag = False
            elif after_flag:
                after_flag = False
            else:
                self.subcommands.add(tok.rstrip("."))
        if not self.env:
            raise SystemExit(f"{path} --help lists no settings: is this the right binary?")

    def check_env(self, where, names):
        for n in names:
            if n not in self.env:
                problem(where, f"{n} is not a setting of this binary (see its --help)")

    def check_argv(self, where, argv):
        """argv after the program name: known flags (with their values), one subcommand at most."""
        positional = []
        i = 0
        while i < len(argv):
            a = argv[i]
            if a.startswith("--"):
                name = a.split("=", 1)[0]
                if name not in self.flags:
                    problem(where, f"unknown flag {name}")
                elif self.flags[name] and "=" not in a:
                    i += 1
                    if i >= len(argv):
                        problem(where, f"flag {name} needs a value")
            else:
                positional.append(a)
            i += 1
        if len(positional) > 1 or any(p not in self.subcommands for p in positional):
            problem(where, f"arguments {positional} are not a subcommand of this binary "
                    f"({sorted(self.subcommands) or 'it takes none'})")


def load_json(path, where):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        problem(where, f"invalid JSON: {e}")
        return None


def check_dockerfile(src, helps):
    path = src / "deploy/docker/Dockerfile"
    where = "deploy/docker/Dockerfile"
    text = re.sub(r"\\\n", " ", path.read_text())
    stages = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            m = re.match(r"(\S+)(?:\s+AS\s+(\S+))?", rest, re.I)
            current = {"from": m.group(1), "env": [], "user": None, "run": [], "copy": []}
            stages[m.group(2) or f"#{len(stages)}"] = current
        elif current is None:
            continue
        elif word in ("ENTRYPOINT", "CMD"):
            try:
                current[word.lower()] = json.loads(rest)
            except ValueError:
                problem(where, f"{word} {rest}: use the JSON (exec) form so signals reach the binary")
        elif word == "ENV":
            current["env"] += re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=", rest)
        elif word == "USER":
            current["user"] = rest.split(":")[0]
        elif word == "RUN":
            current["run"].append(rest)
        elif word == "COPY":
            current["copy"].append(rest)

    def resolved(name, key):
        # A stage inherits ENTRYPOINT, USER and ENV from the stage it is built FROM.
        seen = set()
        while name in stages and name not in seen:
            seen.add(name)
            if stages[name].get(key) not in (None, []):
                return stages[name][key]
            name = stages[name]["from"]
        return None

    builder = stages.get("builder")
    if not builder:
        problem(where, "no builder stage")
    else:
        run = " ".join(builder["run"])
        for needed in ("-DCMAKE_BUILD_TYPE=Release", "-DDP_BUILD_TESTS=OFF", "-G Ninja"):
            if needed not in run:
                problem(where, f"the builder does not configure with {needed}")
        # The same -dev packages as deploy/setup.sh (the one list of what the build needs), but
        # what only the tests use (GoogleTest, libFuzzer's runtime).
        setup = (src / "deploy/setup.sh").read_text()
        test_only = {"libgtest-dev", "libclang-rt-14-dev"}
        for pkg in sorted(set(re.findall(r"\b(lib[a-z0-9.+-]+-dev)\b", setup)) - test_only):
            if not re.search(rf"(?<![\w.-]){re.escape(pkg)}(?![\w.-])", run):
                problem(where, f"the builder lacks {pkg} (listed in deploy/setup.sh)")
    for name, h in helps.items():
        stage = stages.get(name)
        if not stage:
            problem(where, f"no stage named {name}")
            continue
        w = f"{where} [{name}]"
        entry = resolved(name, "entrypoint") or []
        if entry[:1] != [name]:
            problem(w, f"ENTRYPOINT {entry} does not start the {name} binary")
        h.check_argv(w + " ENTRYPOINT+CMD", entry[1:] + (stage.get("cmd") or []))
        if not any(re.search(rf"/usr/local/bin/{re.escape(name)}$", c) for c in stage["copy"]):
            problem(w, f"does not COPY the binary to /usr/local/bin/{name}")
        h.check_env(w + " ENV", [e for s in (name, stage["from"]) if s in stages
                                 for e in stages[s]["env"]])
        user = resolved(name, "user")
        if user in (None, "0", "root"):
            problem(w, "runs as root: the runtime images must set a non-root USER")
    return stages


def check_compose(src, helps, stages):
    where = "docker-compose.yml"
    try:
        import yaml
    except ImportError:
        problem(where, "PyYAML is missing: install python3-yaml (deploy/setup.sh does)")
        return
    try:
        doc = yaml.safe_load((src / where).read_text())
    except yaml.YAMLError as e:
        problem(where, f"invalid YAML: {e}")
        return
    services = doc.get("services") or {}
    for needed in ("redis", "minio", "api-server", "worker", "s3-reverse-proxy"):
        if needed not in services:
            problem(where, f"no service {needed}")
    redis = services.get("redis", {})
    cmd = redis.get("command") or []
    cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
    if "--appendonly" not in cmd or cmd[cmd.index("--appendonly") + 1:][:1] != ["yes"]:
        problem(where, "redis does not run with --appendonly yes")
    if not any(str(v).endswith(":/data") for v in redis.get("volumes") or []):
        problem(where, "redis keeps no volume at /data")
    # Redis has a password (from .env, never in the file), and every REDIS_URL carries it.
    if "requirepass $REDIS_PASSWORD" not in json.dumps(redis.get("entrypoint", "")).replace("$$", "$"):
        problem(where, "redis has no password (requirepass $REDIS_PASSWORD)")
    for name, s in services.items():
        env = s.get("environment") or {}
        url = env.get("REDIS_URL") if isinstance(env, dict) else None
        if url is not None and not url.startswith("redis://:${REDIS_PASSWORD:?"):
            problem(f"{where} [{name}]", "REDIS_URL does not carry the required REDIS_PASSWORD")
    if not any("mc mb" in json.dumps(s.get("command", "")) + json.dumps(s.get("entrypoint", ""))
               for s in services.values()):
        problem(where, "nothing creates the bucket (mc mb)")
    images = {}
    for name, s in services.items():
        for dep in s.get("depends_on") or []:
            if dep not in services:
                problem(f"{where} [{name}]", f"depends on an unknown service {dep}")
        build = s.get("build")
        if not build:
            continue
        target = build.get("target")
        w = f"{where} [{name}]"
        if target not in helps:
            problem(w, f"builds target {target}, which is none of {sorted(helps)}")
            continue
        if build.get("dockerfile") != "deploy/docker/Dockerfile":
            problem(w, "does not build deploy/docker/Dockerfile")
        images[target] = s.get("image")
        h = helps[target]
        env = s.get("environment") or {}
        if isinstance(env, list):
            env = dict(e.split("=", 1) if "=" in e else (e, None) for e in env)
        h.check_env(w + " environment", env)
        entry = s.get("entrypoint")
        entry = (shlex.split(entry) if isinstance(entry, str) else entry) or \
            (stages.get(target, {}).get("entrypoint") or [])
        command = s.get("command")
        command = (shlex.split(command) if isinstance(command, str) else command) or \
            (stages.get(target, {}).get("cmd") or [])
        if entry[:1] != [target]:
            problem(w, f"entrypoint {entry} does not start {target}")
        h.check_argv(w + " command", entry[1:] + command)
        if env.get("LAUNCHER") == "docker":
            sock = env.get("DOCKER_SOCKET", "/var/run/docker.sock")
            if not any(str(v).split(":")[1:2] == [sock] for v in s.get("volumes") or []):
                problem(w, f"LAUNCHER=docker without the socket {sock} mounted")
            networks = doc.get("networks", {}).get("default", {}) or {}
            if env.get("DOCKER_NETWORK") != networks.get("name"):
                problem(w, "DOCKER_NETWORK is not the project's named default network: "
                        "build containers could not reach redis and minio")
        if "BUILD_IMAGE" in env and env["BUILD_IMAGE"] != s.get("image") and \
                services.get(name, {}).get("build", {}).get("target") == "build-runner":
            problem(w, "BUILD_IMAGE is not the build-runner image this file builds")
    # Every required ${VAR:?...} is in the example environment file.
    example = src / "deploy/docker/compose.env.example"
    required = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*):\?", (src / where).read_text()))
    listed = set(re.findall(r"^([A-Z_][A-Z0-9_]*)=", example.read_text(), re.M)) \
        if example.exists() else set()
    for v in sorted(required - listed):
        problem("deploy/docker/compose.env.example", f"lacks {v}, which compose requires")


FARGATE_SIZES = {"256": {512, 1024, 2048}, "512": set(range(1024, 4097, 1024)),
                 "1024": set(range(2048, 8193, 1024)), "2048": set(range(4096, 16385, 1024)),
                 "4096": set(range(8192, 30721, 1024))}


def check_ecs(src, helps):
    ecs = src / "deploy/ecs"
    # Task definitions and policies are parsed where they are checked; anything else here too.
    for p in sorted(ecs.rglob("*.json")):
        if p.parent.name not in ("task-definitions", "iam"):
            load_json(p, str(p.relative_to(src)))
    tds = {}
    for p in sorted((ecs / "task-definitions").glob("*.json")):
        w = str(p.relative_to(src))
        td = load_json(p, w)
        if td is None:
            continue
        for field in ("family", "networkMode", "requiresCompatibilities", "cpu", "memory",
                      "executionRoleArn", "containerDefinitions"):
            if field not in td:
                problem(w, f"no {field}")
        # The build task gets its storage access per build (BUILD_STORAGE_ROLE_ARN), nothing more.
        if (p.stem == "build") == ("taskRoleArn" in td):
            problem(w, "the build task has no task role; every other task has one")
        if td.get("networkMode") != "awsvpc" or "FARGATE" not in td.get("requiresCompatibilities", []):
            problem(w, "Fargate needs networkMode awsvpc and requiresCompatibilities FARGATE")
        cpu, mem = str(td.get("cpu")), str(td.get("memory"))
        if not mem.isdigit() or int(mem) not in FARGATE_SIZES.get(cpu, set()):
            problem(w, f"cpu {cpu} with memory {mem} is not a Fargate size")
        tds[p.stem] = td
        for c in td.get("containerDefinitions", []):
            cw = f"{w} [{c.get('name')}]"
            for field in ("name", "image", "essential", "logConfiguration"):
                if field not in c:
                    problem(cw, f"no {field}")
            logs = c.get("logConfiguration", {})
            if logs.get("logDriver") != "awslogs" or not {"awslogs-group", "awslogs-region",
                                                          "awslogs-stream-prefix"} <= set(logs.get("options", {})):
                problem(cw, "logConfiguration must be awslogs with group, region and stream prefix")
            for pm in c.get("portMappings", []):
                if not isinstance(pm.get("containerPort"), int):
                    problem(cw, f"portMappings entry without an integer containerPort: {pm}")
            m = re.search(r"/([a-z0-9-]+):[^/]*$", c.get("image", ""))
            binary = m.group(1) if m else None
            if binary not in helps:
                problem(cw, f"image {c.get('image')} is none of {sorted(helps)}")
                continue
            h = helps[binary]
            env = [e.get("name") for e in c.get("environment", [])]
            secrets = c.get("secrets", [])
            for s in secrets:
                if not s.get("name") or not re.match(r"arn:aws:(ssm|secretsmanager):", s.get("valueFrom", "")):
                    problem(cw, f"secret {s} needs a name and an SSM or Secrets Manager ARN")
            names = env + [s.get("name") for s in secrets]
            if len(names) != len(set(names)):
                problem(cw, "a variable is set twice (environment and secrets)")
            h.check_env(cw + " environment", names)
            for n in env:
                if h.env.get(n):
                    problem(cw, f"{n} is a secret setting: take it from secrets, not environment")
            entry = c.get("entryPoint") or [binary]
            if entry[:1] != [binary]:
                problem(cw, f"entryPoint {entry} does not start {binary}")
            h.check_argv(cw + " command", entry[1:] + (c.get("command") or []))
    for needed in ("api-server", "s3-reverse-proxy", "worker", "build"):
        if needed not in tds:
            problem("deploy/ecs/task-definitions", f"no {needed}.json")
    check_iam(src, tds)


def statements(policy):
    st = policy.get("Statement", [])
    return [st] if isinstance(st, dict) else st


def as_list(v):
    return v if isinstance(v, list) else [v]


def check_iam(src, tds):
    iam = src / "deploy/ecs/iam"
    policies = {}
    for p in sorted(iam.glob("*.json")):
        w = str(p.relative_to(src))
        doc = load_json(p, w)
        if doc is None:
            continue
        if doc.get("Version") != "2012-10-17" or not statements(doc):
            problem(w, "a policy needs Version 2012-10-17 and statements")
        for st in statements(doc):
            if st.get("Effect") != "Allow":
                continue
            for a in as_list(st.get("Action", [])):
                if "*" in a:
                    problem(w, f"wildcard action {a}")
            # ListTasks has no task resource to name; its ecs:cluster condition is checked below.
            if "*" in as_list(st.get("Resource", [])) and \
                    as_list(st.get("Action")) not in (["ecr:GetAuthorizationToken"],
                                                      ["ecs:ListTasks"]):
                problem(w, f"Resource * for {st.get('Action')}")
        policies[p.stem] = doc

    def grants(name):
        out = {}
        for st in statements(policies.get(name, {})):
            for a in as_list(st.get("Action", [])):
                out.setdefault(a, []).append(st)
        return out

    # Each S3 action, per role, on exactly the prefixes that role needs: outputs (__outputs/*)
    # and directory uploads (__sources/*: the API stores and deletes them, the build reads them,
    # the worker's retention pass deletes old ones), the build cache (__cache/*: builds read,
    # write, evict and list it; the API empties it).
    expect = {"build-role-policy": {"s3:PutObject": {"__outputs", "__cache"},
                                         "s3:AbortMultipartUpload": {"__outputs", "__cache"},
                                         "s3:ListMultipartUploadParts": {"__outputs", "__cache"},
                                         "s3:GetObject": {"__sources", "__cache"},
                                         "s3:DeleteObject": {"__cache"},
                                         "s3:ListBucket": {"__cache"}},
              "api-task-role-policy": {"s3:DeleteObject": {"__outputs", "__sources", "__cache"},
                                       "s3:PutObject": {"__sources"},
                                       "s3:ListBucket": {"__outputs", "__cache"}},
              "proxy-task-role-policy": {"s3:GetObject": {"__outputs"},
                                         "s3:ListBucket": {"__outputs"}},
              "worker-task-role-policy": {"s3:DeleteObject": {"__outputs", "__sources"},
                                          "s3:ListBucket": {"__outputs"}}}
    object_arn = re.compile(r"^arn:aws:s3:::[^/]+/(__outputs|__sources|__cache)/\*$")
    for name, actions in expect.items():
        w = f"deploy/ecs/iam/{name}.json"
        g = grants(name)
        s3 = {a for a in g if a.startswith("s3:")}
        # The worker's ECS and IAM grants are checked below.
        if (s3 if name == "worker-task-role-policy" else set(g)) != set(actions):
            problem(w, f"grants {sorted(g)}, expected exactly {sorted(actions)}")
        for a, sts in g.items():
            if not a.startswith("s3:") and name == "worker-task-role-policy":
                continue
            want = actions.get(a, set())
            for st in sts:
                res = as_list(st.get("Resource", []))
                if a == "s3:ListBucket":
                    prefixes = st.get("Condition", {}).get("StringLike", {}).get("s3:prefix")
                    if sorted(as_list(prefixes or [])) != sorted(f"{x}/*" for x in want):
                        problem(w, f"s3:ListBucket must be limited to the prefixes {sorted(want)}")
                    continue
                got = {m.group(1) if m else r for r in res for m in [object_arn.match(r)]}
                if got != want:
                    problem(w, f"{a} on {res}: expected exactly the prefixes {sorted(want)}")
    w = "deploy/ecs/iam/worker-task-role-policy.json"
    g = grants("worker-task-role-policy")
    if {a for a in g if not a.startswith("s3:")} != {"ecs:RunTask", "ecs:DescribeTasks",
                                                      "ecs:StopTask", "ecs:ListTasks",
                                                      "iam:PassRole", "sts:AssumeRole"}:
        problem(w, f"grants {sorted(g)}, expected RunTask, DescribeTasks, StopTask, ListTasks, "
                   "PassRole, AssumeRole (and the retention pass's S3 grants)")
    build = tds.get("build", {})
    for st in g.get("ecs:RunTask", []):
        fam = build.get("family", "?")
        if not all(re.search(rf":task-definition/{re.escape(fam)}(:\*|:\d+)?$", r)
                   for r in as_list(st.get("Resource"))):
            problem(w, f"ecs:RunTask must be limited to the build task definition {fam}")
    for a in ("ecs:RunTask", "ecs:DescribeTasks", "ecs:StopTask", "ecs:ListTasks"):
        for st in g.get(a, []):
            if "ecs:cluster" not in json.dumps(st.get("Condition", {})):
                problem(w, f"{a} has no ecs:cluster condition")
    passed = {r for st in g.get("iam:PassRole", []) for r in as_list(st.get("Resource"))}
    if passed != {build.get("executionRoleArn")}:
        problem(w, f"iam:PassRole on {sorted(passed)}: only the build task's execution role")
    # The worker's settings name the build task definition and its container.
    worker = tds.get("worker", {}).get("containerDefinitions", [{}])[0]
    wenv = {e["name"]: e.get("value") for e in worker.get("environment", [])}
    # The worker assumes the build role (and only it) for each build; the role trusts the worker.
    role = wenv.get("BUILD_STORAGE_ROLE_ARN", "")
    assumed = {r for st in g.get("sts:AssumeRole", []) for r in as_list(st.get("Resource"))}
    if not role.endswith(":role/deploy-platform-build") or assumed != {role}:
        problem(w, f"sts:AssumeRole on {sorted(assumed)}: only BUILD_STORAGE_ROLE_ARN ({role})")
    trust = policies.get("build-role-trust-policy", {})
    trusted = {p for st in statements(trust) for p in as_list(st.get("Principal", {}).get("AWS", []))}
    if trusted != {tds.get("worker", {}).get("taskRoleArn")}:
        problem("deploy/ecs/iam/build-role-trust-policy.json",
                f"trusts {sorted(trusted)}: only the worker's task role")
    if wenv.get("ECS_TASK_DEFINITION") != build.get("family"):
        problem("deploy/ecs/task-definitions/worker.json", "ECS_TASK_DEFINITION is not the build family")
    names = [c.get("name") for c in build.get("containerDefinitions", [])]
    if wenv.get("ECS_CONTAINER_NAME", "build-runner") not in names:
        problem("deploy/ecs/task-definitions/worker.json", "ECS_CONTAINER_NAME is not a build container")
    if wenv.get("LAUNCHER") != "ecs":
        problem("deploy/ecs/task-definitions/worker.json", "the ECS worker needs LAUNCHER=ecs")
    # Each task role has its policy file: role deploy-platform-<x> <-> iam/<x>-task-role-policy.json.
    for name, td in tds.items():
        if name == "build":
            continue
        m = re.search(r":role/deploy-platform-([a-z0-9-]+)$", td.get("taskRoleArn", ""))
        if not m or f"{m.group(1)}-task-role-policy" not in policies:
            problem(f"deploy/ecs/task-definitions/{name}.json", "taskRoleArn has no policy in deploy/ecs/iam")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", required=True, type=pathlib.Path)
    for b in ("api-server", "build-runner", "s3-reverse-proxy"):
        ap.add_argument("--" + b, required=True)
    args = ap.parse_args()
    helps = {b: binary_help(getattr(args, b.replace("-", "_")))
             for b in ("api-server", "build-runner", "s3-reverse-proxy")}
    stages = check_dockerfile(args.source, helps)
    check_compose(args.source, helps, stages)
    check_ecs(args.source, helps)
    for p in problems:
        print(p)
    print(f"packaging: {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
