"""Static checks of the production-like stack: docker-compose.yml, its scripts, the Dockerfile.

No Docker engine is needed: the files are parsed and their wiring checked.
"""

from __future__ import annotations

import ast
import fnmatch
import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

REQUIRED_SERVICES = {
    "postgres",
    "temporal-schema",
    "temporal",
    "temporal-ui",
    "temporal-search-attributes",
    "migrate",
    "worker",
    "api",
}
APP_DATABASE = "dataimport"
OWNER_ROLE = "dataimport"  # owns the schema, runs migrations
SERVICE_ROLE = "dataimport_app"  # the worker, the API and the CLI: owns nothing
TEMPORAL_ADDRESS = "temporal:7233"
# image:tag with at least major.minor in the tag, e.g. postgres:17.7, temporalio/ui:2.54.1.
PINNED_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/-]*:(?P<tag>\d+\.\d+[0-9A-Za-z._-]*)$")
INTERPOLATION = re.compile(r"\$\{(?P<name>\w+)(?::?-(?P<default>[^}]*))?\}")


def settings_search_attributes() -> dict[str, str]:
    """dataimport.settings.SEARCH_ATTRIBUTES, read without importing the package."""
    tree = ast.parse((ROOT / "dataimport" / "settings.py").read_text())
    for node in tree.body:
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and node.target.id == "SEARCH_ATTRIBUTES"
            and node.value is not None
        ):
            value = ast.literal_eval(node.value)
            assert isinstance(value, dict)
            return value
    raise AssertionError("SEARCH_ATTRIBUTES not found in dataimport/settings.py")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def resolve(value: object) -> str:
    """The value Compose would use with an empty .env: ${NAME:-default} -> default."""

    def default(match: re.Match[str]) -> str:
        if match.group("default") is None:
            raise AssertionError(f"${{{match.group('name')}}} has no default in {value!r}")
        return match.group("default")

    return INTERPOLATION.sub(default, str(value))


def env(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {key: resolve(value) for key, value in raw.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(source, target) pairs, short or long volume syntax."""
    pairs = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, dict):
            pairs.append((str(volume.get("source", "")), str(volume["target"])))
        else:
            parts = str(volume).split(":")
            if len(parts) >= 2:
                pairs.append((parts[0], parts[1]))
    return pairs


def is_named_volume(source: str) -> bool:
    return bool(source) and not source.startswith((".", "/", "~", "$"))


def published_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for port in service.get("ports") or []:
        if isinstance(port, dict):
            if port.get("published"):
                ports.add(int(port["target"]))
            continue
        parts = str(port).split(":")
        if len(parts) >= 2:
            ports.add(int(parts[-1].split("/")[0]))
    return ports


def seconds(duration: object) -> float:
    units = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    text = str(duration)
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"bad duration {text!r}"
    return sum(float(number) * units[unit] for number, unit in parts)


def image_tag(service: dict[str, Any]) -> tuple[str, str]:
    name, _, tag = str(service["image"]).rpartition(":")
    return name, tag


def version(tag: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", tag)[:3])


def script_text(service: dict[str, Any]) -> str:
    """The host file behind the script a service runs from a bind mount."""
    command = [*(service.get("entrypoint") or []), *(service.get("command") or [])]
    scripts = [arg for arg in command if str(arg).endswith(".sh")]
    assert len(scripts) == 1, f"expected one script in {command}"
    script = PurePosixPath(scripts[0])
    for source, target in mounts(service):
        if source.startswith(".") and script.is_relative_to(target):
            path = ROOT / source / script.relative_to(target)
            assert path.is_file(), f"{path} does not exist"
            return path.read_text()
    raise AssertionError(f"{script} is not on a bind mount")


def test_required_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert services.keys() >= REQUIRED_SERVICES, REQUIRED_SERVICES - services.keys()


def test_every_image_is_pinned_or_built(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        if "build" in service:
            context = service["build"]
            context = context if isinstance(context, str) else context.get("context", ".")
            assert (ROOT / context / "Dockerfile").is_file(), name
            continue
        image = str(service.get("image", ""))
        match = PINNED_IMAGE.match(image)
        assert match, f"{name}: image {image!r} is not pinned to a version tag"
        assert match.group("tag") != "latest", name


def test_temporal_server_and_admin_tools_share_a_version(
    services: dict[str, dict[str, Any]],
) -> None:
    server_image, server_tag = image_tag(services["temporal"])
    assert server_image == "temporalio/server"
    for job in ("temporal-schema", "temporal-search-attributes"):
        tools_image, tools_tag = image_tag(services[job])
        assert tools_image == "temporalio/admin-tools", job
        assert tools_tag == server_tag, f"{job} {tools_tag} != server {server_tag}"


def test_worker_can_be_scaled(services: dict[str, dict[str, Any]]) -> None:
    worker = services["worker"]
    assert "container_name" not in worker
    assert not worker.get("ports")
    assert "build" in worker
    assert worker.get("restart") in {"always", "unless-stopped", "on-failure"}


def test_worker_points_at_compose_services(services: dict[str, dict[str, Any]]) -> None:
    variables = env(services["worker"])
    url = urlsplit(variables["DATABASE_URL"])
    assert url.scheme in {"postgresql", "postgres"}
    assert url.hostname == "postgres" and url.port == 5432
    assert url.path == f"/{APP_DATABASE}"
    assert variables["TEMPORAL_ADDRESS"] == TEMPORAL_ADDRESS
    assert variables["TEMPORAL_NAMESPACE"] == "default"
    assert variables["DATAIMPORT_TASK_QUEUE"] == "data-import"
    for tunable in ("DATAIMPORT_DB_POOL_SIZE", "DATAIMPORT_MAX_CONCURRENT_ACTIVITIES"):
        assert int(variables[tunable]) > 0, tunable


def test_storage_dir_is_a_shared_named_volume(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    users = {name for name, service in services.items() if "DATAIMPORT_STORAGE_DIR" in env(service)}
    # migrate reads only the database; every other app container touches uploads.
    readers = users - {"migrate"}
    assert {"worker", "cli", "api"} <= readers
    volumes_used = set()
    for name in readers:
        storage_dir = env(services[name])["DATAIMPORT_STORAGE_DIR"]
        assert storage_dir.startswith("/"), name
        sources = [source for source, target in mounts(services[name]) if target == storage_dir]
        assert len(sources) == 1, f"{name} does not mount a volume at {storage_dir}"
        assert is_named_volume(sources[0]) and sources[0] in declared, name
        volumes_used.add(sources[0])
    assert len(volumes_used) == 1, f"uploads split across volumes {volumes_used}"


def test_worker_serves_metrics_and_json_logs_in_production(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    variables = env(worker)
    host, _, port = variables["DATAIMPORT_METRICS_BIND"].rpartition(":")
    assert host == "0.0.0.0", "Prometheus must reach the metrics port from outside the container"
    assert port in {str(exposed) for exposed in worker.get("expose", [])}
    assert not worker.get("ports")  # scaling stays possible
    for name in ("worker", "api"):
        assert env(services[name])["DATAIMPORT_LOG_FORMAT"] == "json", name
        assert "DATAIMPORT_OTEL_ENDPOINT" in env(services[name]), name  # off unless set
    assert env(services["api"])["OTEL_SERVICE_NAME"] != variables["OTEL_SERVICE_NAME"]


def test_worker_waits_for_migrations_search_attributes_and_temporal(
    services: dict[str, dict[str, Any]],
) -> None:
    conditions = depends_on(services["worker"])
    assert conditions.get("migrate") == "service_completed_successfully"
    assert conditions.get("temporal-search-attributes") == "service_completed_successfully"
    assert conditions.get("temporal") == "service_healthy"
    assert depends_on(services["migrate"]).get("postgres") == "service_healthy"
    assert services["migrate"]["command"] == ["dataimport", "migrate"]


def test_api_runs_the_worker_image_on_port_8000(services: dict[str, dict[str, Any]]) -> None:
    api, worker = services["api"], services["worker"]
    assert (api["build"], api["image"]) == (worker["build"], worker["image"])
    assert api["command"] == ["dataimport", "api", "--host", "0.0.0.0", "--port", "8000"]
    assert 8000 in published_ports(api)
    assert all(str(port).startswith("127.0.0.1:") for port in api["ports"])
    assert api.get("restart") in {"always", "unless-stopped", "on-failure"}
    assert "8000" in " ".join(api["healthcheck"]["test"])
    lines = [line.strip() for line in DOCKERFILE.read_text().splitlines()]
    assert "EXPOSE 8000" in lines


def test_api_reaches_the_same_database_temporal_and_task_queue_as_the_worker(
    services: dict[str, dict[str, Any]],
) -> None:
    api, worker = env(services["api"]), env(services["worker"])
    for name in ("DATABASE_URL", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "DATAIMPORT_TASK_QUEUE"):
        assert api[name] == worker[name], name
    assert int(api.get("DATAIMPORT_MAX_UPLOAD_BYTES", "1")) > 0


def test_api_waits_for_migrations_and_search_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    conditions = depends_on(services["api"])
    assert conditions.get("migrate") == "service_completed_successfully"
    assert conditions.get("temporal-search-attributes") == "service_completed_successfully"
    assert conditions.get("temporal") == "service_healthy"


def test_api_and_worker_share_the_uploads_volume_at_the_storage_dir(
    services: dict[str, dict[str, Any]],
) -> None:
    """The API stores an upload; a worker (another container) must read it at the same path."""
    seen = set()
    for name in ("api", "worker"):
        storage_dir = env(services[name])["DATAIMPORT_STORAGE_DIR"]
        named = [(s, t) for s, t in mounts(services[name]) if is_named_volume(s)]
        assert [(source, target) for source, target in named if target == storage_dir], name
        seen.add((storage_dir, *(source for source, target in named if target == storage_dir)))
    assert len(seen) == 1, f"api and worker disagree on the uploads volume: {seen}"


def test_worker_stop_grace_outlasts_graceful_shutdown(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = services["worker"]
    graceful = float(env(worker)["DATAIMPORT_GRACEFUL_SHUTDOWN_SECONDS"])
    assert graceful > 0
    assert seconds(worker["stop_grace_period"]) > graceful


def test_temporal_runs_on_postgres_after_schema_job(
    services: dict[str, dict[str, Any]],
) -> None:
    temporal = services["temporal"]
    assert depends_on(temporal).get("temporal-schema") == "service_completed_successfully"
    assert depends_on(services["temporal-schema"]).get("postgres") == "service_healthy"
    variables = env(temporal)
    assert variables["DB"] == "postgres12"
    assert variables["POSTGRES_SEEDS"] == "postgres"
    assert variables["POSTGRES_USER"] == env(services["temporal-schema"])["SQL_USER"]
    assert variables["POSTGRES_PWD"] == env(services["temporal-schema"])["SQL_PASSWORD"]
    assert variables.get("DBNAME", "temporal") == "temporal"
    assert variables.get("VISIBILITY_DBNAME", "temporal_visibility") == "temporal_visibility"
    assert 7233 in published_ports(temporal)


def test_dynamic_config_file_is_mounted(services: dict[str, dict[str, Any]]) -> None:
    temporal = services["temporal"]
    path = PurePosixPath(env(temporal)["DYNAMIC_CONFIG_FILE_PATH"])
    assert path.is_absolute()
    for source, target in mounts(temporal):
        if path.is_relative_to(target):
            host_file = ROOT / source / path.relative_to(target)
            assert host_file.is_file(), host_file
            assert isinstance(yaml.safe_load(host_file.read_text()), dict)
            return
    raise AssertionError(f"{path} is not mounted into the temporal service")


def test_schema_job_sets_up_both_databases(services: dict[str, dict[str, Any]]) -> None:
    script = script_text(services["temporal-schema"])
    variables = env(services["temporal-schema"])
    assert variables["SQL_HOST"] == "postgres"
    assert variables["TEMPORAL_DB"] == "temporal"
    assert variables["TEMPORAL_VISIBILITY_DB"] == "temporal_visibility"
    assert "--plugin postgres12" in script
    for step in ("create-database", "setup-schema -v 0.0", "update-schema -d"):
        assert step in script, step
    assert "/etc/temporal/schema/postgresql/v12" in script
    for schema in ("/temporal/versioned", "/visibility/versioned"):
        assert schema in script, schema


def test_ui_points_at_temporal(services: dict[str, dict[str, Any]]) -> None:
    ui = services["temporal-ui"]
    image, tag = image_tag(ui)
    assert image == "temporalio/ui"
    assert version(tag) >= (2, 34)
    assert env(ui)["TEMPORAL_ADDRESS"] == TEMPORAL_ADDRESS
    assert 8080 in published_ports(ui)


def test_search_attribute_job_registers_all_attributes(
    services: dict[str, dict[str, Any]],
) -> None:
    job = services["temporal-search-attributes"]
    assert depends_on(job).get("temporal") == "service_healthy"
    variables = env(job)
    assert variables["TEMPORAL_ADDRESS"] == TEMPORAL_ADDRESS
    pairs = dict(pair.split("=", 1) for pair in variables["SEARCH_ATTRIBUTES"].split())
    assert pairs == settings_search_attributes()
    assert set(pairs) == {
        "ClientAccountId",
        "EngagementId",
        "ImportCategory",
        "ImportStatus",
        "DataImportId",
    }
    script = script_text(job)
    assert "$SEARCH_ATTRIBUTES" in script
    assert "temporal operator search-attribute create" in script
    assert "temporal operator namespace create" in script
    assert "already exists" in script


def test_postgres_holds_all_three_databases(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    postgres = services["postgres"]
    assert 5432 in published_ports(postgres)
    data = [source for source, target in mounts(postgres) if target == "/var/lib/postgresql/data"]
    assert data and is_named_volume(data[0]) and data[0] in (compose.get("volumes") or {})
    initdb = [source for source, target in mounts(postgres) if "initdb.d" in target]
    assert len(initdb) == 1
    init_sql = "\n".join(path.read_text() for path in sorted((ROOT / initdb[0]).glob("*.sh")))
    assert f"CREATE DATABASE {APP_DATABASE} OWNER {OWNER_ROLE}" in init_sql
    # The owner creates the service's login role in the migrate job.
    assert re.search(rf"CREATE ROLE {OWNER_ROLE} LOGIN CREATEROLE", init_sql)
    # The temporal role creates its own two databases in the schema job.
    assert re.search(r"CREATE ROLE temporal LOGIN CREATEDB", init_sql)
    # The owner's password in DATABASE_OWNER_URL is the one the init script gives the role.
    owner_password = urlsplit(env(services["migrate"])["DATABASE_OWNER_URL"]).password
    assert env(postgres)["DATAIMPORT_DB_PASSWORD"] == owner_password
    assert env(postgres)["TEMPORAL_DB_PASSWORD"] == env(services["temporal"])["POSTGRES_PWD"]


def test_the_service_runs_as_a_role_that_owns_nothing_and_migrate_as_the_owner(
    services: dict[str, dict[str, Any]],
) -> None:
    """Row-level security (docs/security.md): worker, API and CLI connect as the service
    role and never see the owner's URL; migrate has both (it creates the service's login)."""
    for name in ("worker", "api", "cli"):
        variables = env(services[name])
        assert "DATABASE_OWNER_URL" not in variables, name
        url = urlsplit(variables["DATABASE_URL"])
        assert url.username == SERVICE_ROLE and url.password, name
    migrate = env(services["migrate"])
    owner, service = urlsplit(migrate["DATABASE_OWNER_URL"]), urlsplit(migrate["DATABASE_URL"])
    assert owner.username == OWNER_ROLE and owner.password
    assert service.username == SERVICE_ROLE
    assert (owner.hostname, owner.port, owner.path) == (
        service.hostname,
        service.port,
        service.path,
    )
    assert owner.password != service.password
    assert migrate["DATABASE_URL"] == env(services["worker"])["DATABASE_URL"]


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name, probe in (("postgres", "pg_isready"), ("temporal", "7233")):
        check = services[name].get("healthcheck") or {}
        test = check.get("test")
        assert test, f"{name} has no healthcheck"
        assert probe in " ".join(test if isinstance(test, list) else [test]), name


def test_named_volumes_are_declared(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(compose.get("volumes") or {})
    used = {
        source
        for service in services.values()
        for source, _ in mounts(service)
        if is_named_volume(source)
    }
    assert used, "no named volumes used"
    assert used <= declared, used - declared


def test_dockerfile_pinned_python_non_root() -> None:
    lines = [
        line.strip()
        for line in DOCKERFILE.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    bases = [line.split()[1] for line in lines if line.upper().startswith("FROM ")]
    assert bases and re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", bases[-1]), bases
    users = [line.split()[1] for line in lines if line.upper().startswith("USER ")]
    assert users, "no USER instruction"
    assert users[-1].split(":")[0] not in {"root", "0"}
    text = "\n".join(lines)
    assert "pip install --no-cache-dir ." in text
    assert 'CMD ["python", "worker.py"]' in lines


def test_dockerignore_keeps_local_state_out_of_the_image() -> None:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".dataimport"} <= patterns
    # pyproject.toml names README.md as the readme: the build needs it.
    assert not patterns & {"*.md", "README.md", "pyproject.toml"}


def test_the_api_serves_the_console_and_its_files_reach_the_image(
    services: dict[str, dict[str, Any]],
) -> None:
    # Healthy only once the installed package answers the console's page too.
    assert "/console/" in " ".join(services["api"]["healthcheck"]["test"])
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    static = ROOT / "dataimport" / "console" / "static"
    shipped = [path.relative_to(ROOT) for path in static.rglob("*") if path.is_file()]
    assert shipped
    for path in shipped:
        # Docker matches a pattern against the path and each of its parent folders.
        candidates = [path, *path.parents][:-1]
        hit = [p for p in patterns for c in candidates if fnmatch.fnmatchcase(c.as_posix(), p)]
        assert not hit, f"{path} is left out of the build context by {hit}"


def test_the_console_links_to_the_temporal_ui_the_host_can_open(
    services: dict[str, dict[str, Any]],
) -> None:
    url = urlsplit(env(services["api"])["TEMPORAL_WEB_UI_URL"])
    # The browser runs on the host: the UI's address is a published port on loopback.
    assert url.hostname in {"localhost", "127.0.0.1"}
    published = {
        (str(port).split(":")[0], int(str(port).split(":")[-2]))
        for port in services["temporal-ui"]["ports"]
    }
    assert ("127.0.0.1", url.port) in published, published
