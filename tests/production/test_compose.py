"""docker-compose.yml and the Dockerfile, checked without a Docker engine: the file parses,
every service the DAGs reach is in it, the image installs the locked dependencies, every
environment variable is one the settings or Airflow know, and the executor is Celery."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from urllib.parse import urlsplit

import pytest
import yaml

from ops_warehouse.settings import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"
DOCKERFILE = PROJECT_ROOT / "Dockerfile"
AIRFLOW_SERVICES = (
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
)
RUN_ONCE = ("airflow-init", "superset-init", "spark-metastore-init")
SPARK_SERVICES = ("spark-master", "spark-worker", "spark-thrift")
# the Dockerfile's targets: the product alone, the product plus the demo world (ops_demo), and
# Superset from its own lock (bi/superset/requirements.txt)
IMAGES = {
    "product": "ops-warehouse:latest",
    "demo": "ops-warehouse-demo:latest",
    "superset": "ops-warehouse-superset:latest",
}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def env(service: dict) -> dict[str, str]:
    return {k: str(v) for k, v in (service.get("environment") or {}).items()}


def host_of(url: str) -> str:
    # ${VAR} interpolations inside the credentials do not change the host
    return urlsplit(re.sub(r"\$\{[^}]*\}", "x", url)).hostname or ""


def test_the_file_parses_and_docker_compose_agrees_where_available(compose):
    assert set(compose) >= {"services", "volumes"}
    if (
        shutil.which("docker")
        and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):  # no Compose plugin on the development machines: PyYAML only
        result = subprocess.run(
            ["docker", "compose", "-f", str(COMPOSE), "config", "--quiet"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", **{k: "x" for k in _required_variables()}},
        )
        assert result.returncode == 0, result.stderr


def _required_variables() -> set[str]:
    return set(re.findall(r"\$\{(\w+):\?", COMPOSE.read_text()))


def test_every_service_of_the_stack_is_there(services):
    assert set(services) >= {
        "postgres",
        "redis",
        "mailpit",
        "superset",
        "demo-sources",
        *AIRFLOW_SERVICES,
        *RUN_ONCE,
        *SPARK_SERVICES,
    }
    assert services["airflow-worker"]["command"][:3] == ["airflow", "celery", "worker"]


def test_every_host_the_dags_reach_is_a_service(services):
    for name in AIRFLOW_SERVICES:
        e = env(services[name])
        for key in (
            "OPS_POSTGRES_URL",
            "OPS_PUBLISHED_POSTGRES_URL",
            "OPS_MARKETING_API_URL",
            "OPS_SUPPORT_API_URL",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
            "AIRFLOW__CELERY__BROKER_URL",
            "AIRFLOW__CELERY__RESULT_BACKEND",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
            "AIRFLOW_CONN_SMTP_DEFAULT",
        ):
            assert key in e, f"{name} has no {key}"
            assert host_of(e[key]) in services, f"{name}: {key} points at {host_of(e[key])!r}"
        # PostgreSQL unless .env says spark, whose Thrift server is a service too
        assert e["OPS_WAREHOUSE"] == "${OPS_WAREHOUSE:-postgres}"
        assert e["OPS_SPARK_THRIFT_HOST"] in services
        assert e["OPS_SPARK_LAKE_DIR"].startswith("/data/"), "the lake lives on the volume"
        assert e["OPS_SHOP_DB_URL"].startswith("sqlite:////data/"), "the shop lives on the volume"
    # the execution API URL must be the api-server's own port
    api = services["airflow-apiserver"]
    port = int(host_port(api["ports"][0])[1])
    url = urlsplit(env(services["airflow-worker"])["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"])
    assert (url.hostname, url.port, url.path) == ("airflow-apiserver", port, "/execution/")
    # Superset is provisioned with the pipeline's own settings: the same published database
    superset = env(services["superset-init"])
    assert host_of(superset["SUPERSET_URL"]) == "superset"
    assert superset["OPS_WAREHOUSE"] == "${OPS_WAREHOUSE:-postgres}"
    assert (
        superset["OPS_PUBLISHED_POSTGRES_URL"]
        == (env(services["airflow-worker"])["OPS_PUBLISHED_POSTGRES_URL"])
    )
    assert host_of(env(services["superset"])["SUPERSET_DATABASE_URI"]) in services


def host_port(mapping: str) -> tuple[str, str]:
    published, _, target = str(mapping).rpartition(":")
    return published, target


def host_db(url: str) -> str:
    return urlsplit(re.sub(r"\$\{[^}]*\}", "x", url)).path.lstrip("/")


def test_celery_executor_with_redis_broker_and_postgres_result_backend(services):
    for name in AIRFLOW_SERVICES + ("airflow-init",):
        e = env(services[name])
        assert e["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert e["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:"), name
        # psycopg 3 (in the lock) serves Airflow's sync and async engines alike; a bare
        # postgresql:// or +psycopg2 URL would need asyncpg, which is not installed
        assert e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg://"), name
        assert e["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg://"), name
        assert e["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC"].startswith(
            "postgresql+psycopg_async://"
        ), name
        for secret in ("AIRFLOW__CORE__FERNET_KEY", "AIRFLOW__API_AUTH__JWT_SECRET"):
            assert e[secret].startswith("${"), f"{name}: {secret} must come from .env"


def test_healthchecks_and_start_order(services):
    for name, service in services.items():
        if name in RUN_ONCE:
            assert service.get("restart") == "no", name
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    for name, service in services.items():
        for dependency, rule in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown {dependency}"
            wanted = (
                "service_completed_successfully" if dependency in RUN_ONCE else "service_healthy"
            )
            assert rule["condition"] == wanted, f"{name} → {dependency}"
    for name in AIRFLOW_SERVICES:
        assert services[name]["depends_on"]["airflow-init"]["condition"] == (
            "service_completed_successfully"
        )


def test_no_secret_is_written_in_the_file():
    text = COMPOSE.read_text()
    for key, value in re.findall(
        r"^\s*(\w*(?:PASSWORD|PASS|SECRET|FERNET_KEY|TOKEN)\w*):\s*(\S+)", text, re.M
    ):
        assert value.startswith("${"), f"{key} has a literal value in docker-compose.yml"
    for url in re.findall(r"\w+://[^\s]+", text):
        userinfo = urlsplit(url).netloc.rpartition("@")[0]
        if ":" in userinfo:
            assert "${" in userinfo, f"a literal password in {url}"


def test_the_image_is_built_from_the_lock(services):
    docker = DOCKERFILE.read_text()
    assert re.search(r"^COPY pyproject.toml uv.lock", docker, re.M)
    assert "uv sync --frozen --no-dev" in docker
    assert "pip install" not in docker, "dependencies come from uv.lock only"
    for name, service in services.items():
        if "build" in service:
            target = service["build"]["target"]
            assert service["image"] == IMAGES[target], name
        command = " ".join(map(str, service.get("command") or []))
        assert "pip install" not in command, f"{name} installs packages at start-up"
        assert "_PIP_ADDITIONAL_REQUIREMENTS" not in env(service), name
    for name in AIRFLOW_SERVICES + RUN_ONCE + ("demo-sources",):
        assert "build" in services[name], f"{name} does not use the project image"
    # what the stack relies on is in the lock, at the version pyproject.toml pins
    lock = {
        p["name"]: p["version"]
        for p in tomllib.loads((PROJECT_ROOT / "uv.lock").read_text())["package"]
        if "version" in p
    }
    pyproject = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())
    pin = next(d for d in pyproject["project"]["dependencies"] if d.startswith("apache-airflow=="))
    assert lock["apache-airflow"] == pin.split("==")[1]
    for package in (
        "apache-airflow-providers-celery",
        "celery",
        "redis",
        "psycopg",
        "psycopg2-binary",
        "dbt-postgres",
        "apache-airflow-providers-smtp",
    ):
        assert package in lock, f"{package} is not in uv.lock"
    ignored = (PROJECT_ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".git", ".env"} <= set(ignored)


def dockerfile_stages() -> dict[str, list[str]]:
    """The Dockerfile's instructions by stage (``FROM … AS name``; the unnamed last one is
    ``""``), continuation lines joined."""
    stages: dict[str, list[str]] = {}
    current = None
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            words = line.split()
            current = words[3] if len(words) > 3 and words[2].upper() == "AS" else ""
            stages[current] = [line]
        elif current is not None:
            stages[current].append(line)
    return stages


def test_the_product_image_holds_no_demo(services):
    stages = dockerfile_stages()
    assert list(stages) == ["product", "demo", "superset", ""], (
        "product, demo, superset, then the default"
    )
    assert stages[""] == ["FROM product"], "the default target is the product alone"
    assert stages["demo"][0] == "FROM product AS demo"

    def copied(stage: str) -> set[str]:
        return {line.split()[1] for line in stages[stage] if line.startswith("COPY ")}

    assert "src" in copied("product") and not {"demo", "."} & copied("product")
    assert not any("--group demo" in line for line in stages["product"])
    assert "demo" in copied("demo")
    assert any("uv sync --frozen --no-dev --group demo" in line for line in stages["demo"])
    # only the demo sources run the demo image; everything Airflow runs is the product
    for name, service in services.items():
        if "build" in service:
            want = {"demo-sources": "demo", "superset": "superset"}.get(name, "product")
            assert service["build"] == {"context": ".", "target": want}, name
    # Superset's image is its lock and the BI folder, nothing of the pipeline but src/
    assert {"bi/superset/requirements.txt", "src", "bi"} <= copied("superset")
    assert any("uv pip sync" in line for line in stages["superset"])
    command = " ".join(services["demo-sources"]["command"])
    assert "ops-demo generate" in command and "python -m ops_demo.server" in command
    for name, service in services.items():
        if name != "demo-sources":
            assert "demo" not in " ".join(map(str, service.get("command") or [])), name


def test_the_api_tokens_come_from_the_env_file(services):
    example = (PROJECT_ROOT / "deploy" / "compose.env.example").read_text()
    for name in ("OPS_MARKETING_API_TOKEN", "OPS_SUPPORT_API_TOKEN"):
        for service in AIRFLOW_SERVICES + ("demo-sources",):
            assert env(services[service])[name] == f"${{{name}:?set {name} in .env}}", service
        assert re.search(rf"^{name}=$", example, re.M), f"{name} is not in compose.env.example"


def test_environment_names_are_known_settings_and_airflow_options(services):
    from airflow.configuration import conf

    # every documented option, Airflow's own and the providers' ([celery]), defaults or not
    known = {
        (section, option)
        for section, spec in conf.configuration_description.items()
        for option in spec.get("options", {})
    }
    settings_source = (PROJECT_ROOT / "src/ops_warehouse/settings.py").read_text()
    read_by_settings = set(re.findall(r'_(?:env|parsed|choice)\(\s*"(OPS_\w+)"', settings_source))
    readme = (PROJECT_ROOT / "README.md").read_text()
    in_readme = set(re.findall(r"`(OPS_\w+)`", readme))
    for name, service in services.items():
        for key in env(service):
            if key.startswith("OPS_"):
                assert key in read_by_settings, f"{name}: {key} is not read by settings.py"
                assert key in in_readme, f"{name}: {key} is not in the README's settings table"
            elif key.startswith("AIRFLOW__"):
                _, section, option = key.split("__", 2)
                assert (section.lower(), option.lower()) in known, (
                    f"{name}: {key} is not an Airflow option"
                )


def _options(command: list[str], flag: str) -> dict[str, str]:
    """``--conf key=value`` (or any ``flag``) options of a command, as a dict."""
    return dict(str(command[i + 1]).split("=", 1) for i, word in enumerate(command) if word == flag)


def test_the_spark_cluster_and_its_metastore_in_postgres(services):
    import xml.etree.ElementTree as ElementTree

    master, worker, thrift = (services[name] for name in SPARK_SERVICES)
    for service in (master, worker, thrift, services["spark-metastore-init"]):
        assert service["build"]["target"] == "product", "pyspark's scripts are in the image"
    command = list(map(str, master["command"]))
    assert command[:2] == ["spark-class", "org.apache.spark.deploy.master.Master"]
    master_url = f"spark://spark-master:{command[command.index('--port') + 1]}"
    assert worker["command"][:2] == ["spark-class", "org.apache.spark.deploy.worker.Worker"]
    assert worker["command"][-1] == master_url
    assert worker["deploy"]["replicas"] == 2
    submit = list(map(str, thrift["command"]))
    assert submit[0] == "spark-submit"
    assert "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2" in submit
    assert submit[submit.index("--master") + 1] == master_url
    conf = _options(submit, "--conf")
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert int(conf["spark.task.maxFailures"]) >= 4
    assert conf["spark.cores.max"] == str(worker["deploy"]["replicas"])
    worker_memory = worker["command"][worker["command"].index("--memory") + 1]
    assert conf["spark.executor.memory"] == worker_memory, "an executor fits its worker"
    # executors write the tables the driver lists: the warehouse is on the shared volume
    assert conf["spark.sql.warehouse.dir"].startswith("/data/")
    for service in (worker, thrift):
        assert "ops-data:/data" in service["volumes"]
    assert _options(submit, "--hiveconf")["hive.server2.thrift.port"] == "10000"
    assert "ports" not in thrift, "the Thrift server has no login: not published"

    # the metastore: hive-site.xml in the Thrift server's SPARK_CONF_DIR (the image copies
    # deploy/), pointing at the compose PostgreSQL with credentials from the environment
    conf_dir = env(thrift)["SPARK_CONF_DIR"]
    assert conf_dir == "/opt/ops-warehouse/deploy/spark"
    assert re.search(r"^COPY deploy deploy$", DOCKERFILE.read_text(), re.M)
    site = ElementTree.parse(PROJECT_ROOT / "deploy/spark/hive-site.xml").getroot()
    props = {p.findtext("name"): p.findtext("value") for p in site.iter("property")}
    url = props["javax.jdo.option.ConnectionURL"]
    assert url.startswith("jdbc:postgresql://")
    assert host_of(url.removeprefix("jdbc:")) == "postgres" in services
    assert props["javax.jdo.option.ConnectionDriverName"] == "org.postgresql.Driver"
    for key in ("javax.jdo.option.ConnectionUserName", "javax.jdo.option.ConnectionPassword"):
        variable = re.fullmatch(r"\$\{env\.(\w+)\}", props[key])
        assert variable, f"{key} must come from the environment, not {props[key]!r}"
        assert variable.group(1) in env(thrift), f"spark-thrift does not set {variable.group(1)}"
    assert env(thrift)["HIVE_METASTORE_PASSWORD"].startswith("${")
    # the metastore's database and the JDBC driver (not bundled with Spark) come first
    init = services["spark-metastore-init"]
    assert thrift["depends_on"]["spark-metastore-init"]["condition"] == (
        "service_completed_successfully"
    )
    assert url.rsplit("/", 1)[1] == "hive_metastore"
    script = (PROJECT_ROOT / "deploy/spark/metastore_init.py").read_text()
    jar = submit[submit.index("--driver-class-path") + 1]
    assert jar.startswith(env(init)["SPARK_JARS_DIR"] + "/")
    assert f'JDBC_JAR = "{jar.rsplit("/", 1)[1]}"' in script
    assert 'DATABASE = "hive_metastore"' in script
    assert env(init)["HIVE_METASTORE_USER"] == env(thrift)["HIVE_METASTORE_USER"]
