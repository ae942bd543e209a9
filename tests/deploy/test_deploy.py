"""deploy/ cannot be built or applied here, so these tests keep it honest: every ``bastion``
command it runs exists with those flags, every embedded config passes bastion's own loader,
ports, paths, users and names agree across the Dockerfile, the compose file and the Kubernetes
manifests, the probes answer on a real gateway started with the deployed config, and the
Dockerfile passes hadolint and the rules below."""

from __future__ import annotations

import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import click
import pytest
import yaml
from click.testing import CliRunner

from bastion.auth.keys.hashing import PEPPER_ENV
from bastion.cli.main import cli
from bastion.config.loader import build_config, load_config
from bastion.config.models import BastionConfig
from tests.cluster.processes import Cluster
from tests.deploy.manifests import (
    DEPLOY,
    K8S,
    ROOT,
    compose,
    dockerfile_stages,
    exec_form,
    k8s_documents,
    shell_commands,
)

CONFIG_PATH = "/etc/bastion/bastion.yaml"
IMAGE_PREFIX = "bastion:"


def check_cli(argv: list[str]) -> None:
    """Parse ``bastion ARGV`` with the real click CLI, without running it: an unknown command
    or option, or a missing required one, fails."""
    command: click.Command = cli
    context = click.Context(cli, info_name="bastion")
    args = list(argv)
    while isinstance(command, click.Group):
        assert args, f"bastion {' '.join(argv)}: no command"
        name = args.pop(0)
        found = command.get_command(context, name)
        assert found is not None, f"bastion {' '.join(argv)}: no command {name!r}"
        command = found
        context = click.Context(command, info_name=name, parent=context)
    try:
        command.make_context(command.name, args, parent=context.parent)
    except click.ClickException as exc:
        raise AssertionError(f"bastion {' '.join(argv)}: {exc.format_message()}") from None


# -- what runs bastion, and with which config


def runtime_stage() -> Any:
    return dockerfile_stages()[-1]


def image_command() -> list[str]:
    stage = runtime_stage()
    entrypoint = exec_form(stage.all("ENTRYPOINT")[-1])
    assert entrypoint == ["bastion"]
    return exec_form(stage.all("CMD")[-1])


def bastion_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if str(service.get("image", "")).startswith(IMAGE_PREFIX)
    }


def k8s_deployment() -> dict[str, Any]:
    return k8s_documents()[("Deployment", "bastion")]


def pod_containers() -> list[dict[str, Any]]:
    spec = k8s_deployment()["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def every_command() -> list[tuple[str, list[str]]]:
    found = [("Dockerfile CMD", image_command())]
    found += [(f"compose {name}", s["command"]) for name, s in bastion_services().items()]
    found += [(f"k8s {c['name']}", c["args"]) for c in pod_containers()]
    docs = ROOT / "docs" / "operations.md"
    found += [("docs/operations.md", argv) for argv in shell_commands(docs)]
    return found


def compose_config() -> BastionConfig:
    return load_config(DEPLOY / "bastion.yaml")


def k8s_config() -> BastionConfig:
    data = k8s_documents()[("ConfigMap", "bastion-config")]["data"]["bastion.yaml"]
    return build_config(yaml.safe_load(data), "deploy/k8s/configmap.yaml")


@pytest.mark.parametrize(("where", "argv"), every_command(), ids=lambda v: str(v)[:40])
def test_every_bastion_command_exists_with_its_flags(where: str, argv: list[str]) -> None:
    check_cli(argv)


def test_the_checker_refuses_what_the_cli_does_not_have() -> None:
    with pytest.raises(AssertionError, match="no command 'upgrade'"):
        check_cli(["upgrade"])
    with pytest.raises(AssertionError, match="--no-such-flag"):
        check_cli(["serve", "--no-such-flag"])
    with pytest.raises(AssertionError, match="--config"):
        check_cli(["db", "upgrade"])  # required


def test_the_operations_guide_has_commands_to_check() -> None:
    names = {" ".join(argv[:2]) for argv in shell_commands(ROOT / "docs" / "operations.md")}
    assert {"db upgrade", "db status", "keys rotate", "keys revoke", "jwks rotate"} <= names


def test_every_command_uses_the_mounted_config() -> None:
    for where, argv in every_command():
        if where == "docs/operations.md":
            continue
        assert argv[argv.index("--config") + 1] == CONFIG_PATH, where


def test_the_embedded_configs_pass_bastions_loader() -> None:
    for config in (compose_config(), k8s_config()):
        assert config.postgres.dsn is not None  # shared state, not per-pod SQLite
        assert config.redis.url is not None
        assert config.rate_limit.storage == "redis"
        assert config.admin.enabled
        for url in (config.postgres.dsn, config.redis.url):
            assert urllib.parse.urlsplit(url).password is None  # secrets come from the env


# -- ports, paths, users


def test_ports_agree_everywhere() -> None:
    exposed = {int(p) for text in runtime_stage().all("EXPOSE") for p in text.split()}
    for config in (compose_config(), k8s_config()):
        assert {config.listen.port, config.admin.listen.port} == exposed
    listen = compose_config().listen.port
    for name, service in bastion_services().items():
        for published in service.get("ports", []):
            host, _, container = str(published).rpartition(":")
            assert int(container) == listen, name
            assert host.startswith("127.0.0.1:"), name  # published on loopback only
    container = k8s_deployment()["spec"]["template"]["spec"]["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": k8s_config().listen.port, "admin": k8s_config().admin.listen.port}
    service = k8s_documents()[("Service", "bastion")]
    assert [p["targetPort"] for p in service["spec"]["ports"]] == ["http"]
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["port"] == "admin"
    upstream = urllib.parse.urlsplit(str(compose_config().routes[0].upstream))
    demo = compose()["services"][upstream.hostname]
    assert demo["command"] == ["--port", str(upstream.port)]


def test_probes_and_healthchecks_point_at_admin_paths() -> None:
    container = k8s_deployment()["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    admin = compose_config().admin.listen.port
    healthcheck = runtime_stage().all("HEALTHCHECK")[0]
    assert f"http://127.0.0.1:{admin}/healthz" in healthcheck
    for name, service in bastion_services().items():
        if name.startswith("gateway"):
            assert f"http://127.0.0.1:{admin}/readyz" in " ".join(service["healthcheck"]["test"])


def test_non_root_and_read_only_root_filesystem() -> None:
    user = runtime_stage().all("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert gid.isdigit()
    assert int(gid) != 0
    pod = k8s_deployment()["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["automountServiceAccountToken"] is False
    for container in pod_containers():
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["capabilities"]["drop"] == ["ALL"], container["name"]
    for name, service in bastion_services().items():
        assert service["read_only"] is True, name
        assert service["user"] == user, name
        assert service["cap_drop"] == ["ALL"], name


def test_state_lives_on_a_volume_and_the_config_on_a_read_only_mount() -> None:
    state = str(compose_config().state_dir)
    assert str(k8s_config().state_dir) == state
    assert any(state in text for text in runtime_stage().all("VOLUME"))
    assert runtime_stage().all("WORKDIR")[-1] == state
    pod = k8s_deployment()["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for container in pod_containers():
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        assert "emptyDir" in volumes[mounts[state]["name"]]
        assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
        config = mounts[str(Path(CONFIG_PATH).parent)]
        assert config["readOnly"] is True
        assert volumes[config["name"]]["configMap"]["name"] == "bastion-config"
    for name, service in bastion_services().items():
        targets = {str(v).split(":")[1]: str(v) for v in service["volumes"]}
        assert state in targets, name
        assert targets[CONFIG_PATH].endswith(":ro"), name
        assert (DEPLOY / targets[CONFIG_PATH].split(":")[0]).resolve() == DEPLOY / "bastion.yaml"
        assert "/tmp" in service["tmpfs"], name


def test_secrets_come_from_the_secret_and_names_resolve() -> None:
    documents = k8s_documents()
    secret = documents[("Secret", "bastion-secrets")]
    assert set(secret["stringData"]) == {PEPPER_ENV, "PGPASSWORD"}
    for container in pod_containers():
        refs = [e["secretRef"]["name"] for e in container["envFrom"]]
        assert refs == ["bastion-secrets"], container["name"]
    labels = k8s_deployment()["spec"]["template"]["metadata"]["labels"]
    assert k8s_deployment()["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert documents[("Service", "bastion")]["spec"]["selector"].items() <= labels.items()
    budget = documents[("PodDisruptionBudget", "bastion")]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] < k8s_deployment()["spec"]["replicas"]
    for service in bastion_services().values():
        assert {PEPPER_ENV, "PGPASSWORD"} <= set(service["environment"])
    policy = documents[("NetworkPolicy", "bastion")]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    container = k8s_deployment()["spec"]["template"]["spec"]["containers"][0]
    named = {p["name"] for p in container["ports"]}
    allowed = [p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]]
    assert sorted(allowed) == sorted(named)  # every port named, the admin one restricted
    admin_rule = next(r for r in policy["spec"]["ingress"] if r["ports"][0]["port"] == "admin")
    assert admin_rule.get("from")
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


def test_the_database_is_upgraded_before_any_gateway_serves() -> None:
    init = k8s_deployment()["spec"]["template"]["spec"]["initContainers"]
    assert [c["args"][:2] for c in init] == [["db", "upgrade"]]
    services = compose()["services"]
    assert services["migrate"]["command"][:2] == ["db", "upgrade"]
    gateways = [name for name in services if name.startswith("gateway")]
    assert len(gateways) == 3
    for name in gateways:
        needs = services[name]["depends_on"]
        assert needs["migrate"]["condition"] == "service_completed_successfully"
        for dependency in needs:
            assert dependency in services
    assert {"postgres", "redis", "upstream"} <= set(services)


def test_images_name_this_version() -> None:
    from bastion.version import __version__

    tag = f"{IMAGE_PREFIX}{__version__}"
    assert {c["image"] for c in pod_containers()} == {tag}
    assert {s["image"] for s in bastion_services().values()} == {tag}
    assert tag in (DEPLOY / "Dockerfile").read_text()


# -- the Dockerfile


def test_dockerfile_passes_hadolint() -> None:
    binary = shutil.which("hadolint") or str(Path(sys.executable).with_name("hadolint"))
    result = subprocess.run(
        [binary, "--failure-threshold", "info", str(DEPLOY / "Dockerfile")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_rules() -> None:
    stages = dockerfile_stages()
    assert len(stages) >= 2
    assert all(s.name for s in stages)
    build, runtime = stages[0], stages[-1]
    assert runtime.image == build.image  # the wheels match the runtime's Python
    for stage in stages:
        assert not stage.all("ADD")  # COPY only: nothing fetched at build time
        for run in stage.all("RUN"):
            if "apt-get install" in run:
                assert "--no-install-recommends" in run
                assert "rm -rf /var/lib/apt/lists/*" in run
            if "pip " in run:
                assert "--no-cache-dir" in run
    assert not any("gcc" in run for run in runtime.all("RUN"))  # no compiler in the image
    assert any("--no-index" in run for run in runtime.all("RUN"))  # only the built wheels
    env = " ".join(runtime.all("ENV"))
    assert "PYTHONDONTWRITEBYTECODE=1" in env  # nothing written to a read-only root
    for copy in [c for s in stages for c in s.all("COPY") if "--from=" not in c]:
        for source in copy.split()[:-1]:
            assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
    assert runtime.all("USER"), "the runtime stage must switch to a non-root user"


# -- the probes answer, on a real gateway running the deployed config


def test_the_deployed_config_serves_its_probes(
    tmp_path: Path,
    postgres_dsn: str,
    pg_schema: str,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The compose config with its hosts replaced by this machine's services: after
    ``bastion db upgrade``, the k8s probes' paths answer 200 on the admin listener."""
    import httpx

    monkeypatch.setenv(PEPPER_ENV, "deploy-test-pepper-" + "x" * 32)
    data = yaml.safe_load((DEPLOY / "bastion.yaml").read_text())
    data.update(
        state_dir=str(tmp_path / "state"),
        postgres={"dsn": postgres_dsn, "schema": pg_schema},
        redis={**data["redis"], "url": redis_url, "key_prefix": redis_prefix},
    )
    cluster = Cluster(tmp_path / "gw", data)
    upgrade = CliRunner().invoke(cli, ["db", "upgrade", "--config", str(cluster.config_path)])
    assert upgrade.exit_code == 0, upgrade.output
    container = k8s_deployment()["spec"]["template"]["spec"]["containers"][0]
    try:
        cluster.start(1)  # loopback ports replace 0.0.0.0 on the command line
        instance = cluster.instances[0]
        for probe in ("readinessProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            answer = httpx.get(f"http://127.0.0.1:{instance.admin_port}{path}", timeout=2)
            assert answer.status_code == 200, (path, answer.text)
    finally:
        cluster.stop()
