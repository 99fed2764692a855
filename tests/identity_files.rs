//! Identity from files: the real binary on fixture `/proc` trees of every platform sentinit targets,
//! checked through `--identity` and through what the workload finds in its environment.

mod identity_support;

use identity_support::{fixture, fixture_with_hostname, identity, scratch_dir, workload};
use serde_json::Value;
use std::time::Duration;

/// (fixture, the container's own ID, where it must come from, cgroup version).
const PLATFORMS: &[(&str, &str, &str, u64)] = &[
    ("docker-v1-cgroupfs", "5e0100ef10deac73e8dbcabe42d84dc3f1352bf85c148e8086b813169092f2ad", "cgroup", 1),
    ("docker-v1-systemd", "316c345edd01d735ce5019504a359b5eca8b8319a21fea47b24485de5ba1e60b", "cgroup", 1),
    ("docker-v2-private", "2b7ccb74724593fdc3de2f6573063db82e12b09076a480140551a39a560f913b", "mountinfo", 2),
    ("docker-v2-host-cgroupns", "d91b359a5b1d0dc329755e72628517f5b79b78d2c871ab3439b4a72df3b334a6", "cgroup", 2),
    ("docker-custom-hostname", "bcc97e1aabfae839b6fa667debfeedd46651f2c4773514b485f38d3f804e541d", "mountinfo", 2),
    ("docker-host-network", "915ce74f689ea9ff209471bb70929daa093281785e65ec821848cea00c18997a", "mountinfo", 2),
    ("docker-desktop", "ba080d849081ade50bd3c508b67cc5ff985e82da5d2b865b0e02765ac20500da", "mountinfo", 2),
    ("docker-rootless", "1dfec15bdb69c62add2f184a1f8fc2ad2370307c927a0d3b4986856d8c988597", "mountinfo", 2),
    ("docker-in-docker", "948cc9e82a2395f8d10671dea6a461b407317df87cfe702fa17dfd1239468d8a", "cgroup", 1),
    (
        "docker-in-docker-v2-host-cgroupns",
        "211c0d78c6e774f3a34dccef834fdf448543c10efb3cb12fd10fcbf8469e917b",
        "cgroup",
        2,
    ),
    ("docker-v2-private-user-bind", "abe95d821be4c78db6eb5d4773e481664b61e4f84add55a85a1acf0dc0eba2e8", "mountinfo", 2),
    ("ecs-ec2-v1-bridge", "e29e9af042db8caad4f6e852fd2d1c360e6e192108eb3720c3506e506bc051da", "cgroup", 1),
    ("ecs-ec2-v1-awsvpc", "22f4ba720edd997f518a7262f0da43ca8348c8ed9498db0da625c736b9eb9700", "cgroup", 1),
    ("ecs-al2023-v2", "9e9b153502024f36f61af79450a7d1e7c00f639b96c405e3d2a6807a113ca5d4", "mountinfo", 2),
    ("fargate-8-digits", "dd4d91c231e43885843457a1908b6c90-71576537", "cgroup", 1),
    ("fargate-9-digits", "1b68341ca357f1b7c688ef29446e222e-123456789", "cgroup", 1),
    ("fargate-10-digits", "a2e38d0dfc0b4a7ff566e8783dcd4bf5-3618752567", "cgroup", 1),
    ("eks-fargate", "827509a6f04e7ba101eac89e81a20ed87bde4186f12694495eab3d0e7acd5e86", "cgroup", 1),
    ("k8s-containerd-v1-systemd", "9c63cdc20e83ca1d98f4045828b587f6f76f55dbbb8c2ce0e3823009d1461c92", "cgroup", 1),
    ("k8s-containerd-colon", "f16bf3243648bed4dc3c8171ff93a7ef66da2c6aa3ab1be0748616aca557b4db", "cgroup", 1),
    ("crio-v1-systemd", "c27ee922962d8d28c8fa17ebe30bfb530e2beb7bfeef8aa7be86c8f5589571c3", "cgroup", 1),
    ("crio-v2-private", "d038fe54461c737248fd1bf1bd477df37815488fe1b3de2f336769a77e161a33", "mountinfo", 2),
    ("podman-rootless", "56dfa3bc944415a972b0fe05883435f6f061150cc65600d923a24fd565932362", "mountinfo", 2),
    ("podman-crun-container", "3e95bc1214920188c19831bf800af595f746bb497415c10b64dd58b6fa3eb4e7", "cgroup", 2),
];

/// IDs that sit in those trees but are not the container: the outer Docker-in-Docker container, pause
/// containers, the CRI-O sandbox.
const DECOYS: &[&str] = &[
    // k8s-containerd-v2-private: the pod sandbox behind /etc/hostname and /etc/resolv.conf.
    "4164e156b246b93662628a6d2ab12f32574f15dda5fdf542fec402b7ef33debe",
    // docker-v2-private-user-bind: a backup of another container's directory, bind-mounted at /data.
    "ee84ce5263154d21c1d0abb2bafa16b863a9aaa2f46d76dd92b7ed27b61eb022",
    "b0c0ceb67c5c186094db81ee217727638fabc376cf7f59ebb9c9cc8bfb570c3c",
    "a90b4c601946ec91b71e916776a1f67d721b64874c07fb5e92ef1e4186a6ae42",
    "f465abb05ac8817a089ba49f40492f1ae5c74c8f10da1d92f4bab68493e0ba9c",
    "38d8b0feccbefa7e6c0db93bd32068fc35ff398527d866e0206c083737829d90",
];

#[test]
fn every_platform_resolves_its_own_container_id() {
    for &(name, id, source, version) in PLATFORMS {
        let root = fixture(name);
        let json = identity(&[], &[("SENTINIT_PROC_ROOT", &root)]).json();
        assert_eq!(json["container_id"], id, "{name}: {json}");
        assert_eq!(json["container_id_source"], source, "{name}: {json}");
        assert_eq!(json["cgroup_version"], version, "{name}: {json}");
        assert_eq!(json["task_arn"], Value::Null, "{name}: no ECS source, no task: {json}");
        assert!(!DECOYS.contains(&json["container_id"].as_str().unwrap()), "{name}");

        let run = workload(&[], &[("SENTINIT_PROC_ROOT", &root)]);
        let env = run.workload_env();
        assert_eq!(env.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(id), "{name}");
        assert!(!env.contains_key("ECS_TASK_ARN"), "{name}");
        assert!(run.stderr().contains(&format!("START container={id} task=unknown")), "{name}: {}", run.stderr());
    }
}

#[test]
fn the_outer_docker_in_docker_container_never_wins_not_even_by_hostname() {
    // cgroup: 0::/docker/OUT/docker/IN; cpuset: /docker/OUT (the outer container, where cpuset is on).
    const OUTER: &str = "b0c0ceb67c5c186094db81ee217727638fabc376cf7f59ebb9c9cc8bfb570c3c";
    const INNER: &str = "211c0d78c6e774f3a34dccef834fdf448543c10efb3cb12fd10fcbf8469e917b";
    for hostname in [&OUTER[..12], &INNER[..12], "builder-7"] {
        let root = fixture_with_hostname("docker-in-docker-v2-host-cgroupns", hostname);
        let root = root.to_string_lossy().into_owned();
        let json = identity(&[], &[("SENTINIT_PROC_ROOT", &root)]).json();
        assert_eq!(json["container_id"], INNER, "hostname {hostname}: {json}");
        assert_eq!(json["container_id_source"], "cgroup", "hostname {hostname}: {json}");
        let _ = std::fs::remove_dir_all(&root);
    }
}

#[test]
fn a_users_bind_of_another_containers_directory_is_not_evidence() {
    // `-v /backup/containers/<other>:/data`-style binds have the runtime's source shape but are
    // mounted elsewhere than /etc/hostname, /etc/hosts, /etc/resolv.conf: only the runtime's count.
    let json = identity(&[], &[("SENTINIT_PROC_ROOT", &fixture("docker-v2-private-user-bind"))]).json();
    assert_eq!(json["container_id"], "abe95d821be4c78db6eb5d4773e481664b61e4f84add55a85a1acf0dc0eba2e8", "{json}");
    assert_eq!(json["container_id_source"], "mountinfo", "{json}");
}

#[test]
fn kubernetes_containerd_on_cgroup_v2_resolves_no_id_rather_than_the_sandbox() {
    let run = workload(&["-v"], &[("SENTINIT_PROC_ROOT", &fixture("k8s-containerd-v2-private"))]);
    assert!(!run.workload_env().contains_key("DOCKER_CONTAINER_ID"), "{}", run.stderr());
    assert!(!run.stderr().contains("4164e156b246"), "the sandbox ID is never named: {}", run.stderr());
    let json = identity(&[], &[("SENTINIT_PROC_ROOT", &fixture("k8s-containerd-v2-private"))]).json();
    assert_eq!(json["container_id"], Value::Null, "{json}");
    assert_eq!(json["container_id_source"], Value::Null, "{json}");
    assert_eq!(json["cgroup_version"], 2, "{json}");
}

#[test]
fn a_host_login_session_resolves_nothing() {
    let root = fixture("host-login-session");
    let json = identity(&[], &[("SENTINIT_PROC_ROOT", &root)]).json();
    for key in ["container_id", "container_id_source", "task_arn", "task_arn_source", "task_id", "cluster"] {
        assert_eq!(json[key], Value::Null, "{key}: {json}");
    }
    assert_eq!(json["cgroup_version"], 1);

    let run = workload(&["-v"], &[("SENTINIT_PROC_ROOT", &root)]);
    let env = run.workload_env();
    for name in ["DOCKER_CONTAINER_ID", "ECS_TASK_ARN", "ECS_TASK_ID", "ECS_CLUSTER", "ECS_CONTAINER_NAME"] {
        assert!(!env.contains_key(name), "{name} must not be set");
    }
    let stderr = run.stderr();
    assert!(stderr.contains("START container=unknown task=unknown"), "{stderr}");
    // -v says why, once per variable, naming what was looked at.
    let why = stderr.lines().filter(|l| l.contains("DOCKER_CONTAINER_ID not set")).collect::<Vec<_>>();
    assert_eq!(why.len(), 1, "{stderr}");
    assert!(why[0].contains("session-3.scope"), "{}", why[0]);
    assert_eq!(stderr.matches("ECS_TASK_ARN not set").count(), 1, "{stderr}");
}

#[test]
fn without_v_an_unresolved_identity_is_silent_apart_from_start() {
    let run = workload(&[], &[("SENTINIT_PROC_ROOT", &fixture("host-login-session"))]);
    let stderr = run.stderr();
    // The START line, with the CPU count (the limits: tests/limits.rs) and nothing else.
    let start = stderr.lines().next().unwrap_or_default();
    assert!(start.starts_with("START container=unknown task=unknown cpus="), "{stderr}");
    assert!(!stderr.contains("sentinit:"), "no warnings or explanations without -v: {stderr}");
}

#[test]
fn quiet_drops_the_start_line_but_not_the_export() {
    let (_, id, _, _) = PLATFORMS[0];
    let run = workload(&["--quiet"], &[("SENTINIT_PROC_ROOT", &fixture(PLATFORMS[0].0))]);
    assert_eq!(run.workload_env().get("DOCKER_CONTAINER_ID").map(String::as_str), Some(id));
    assert!(!run.stderr().contains("START"), "{}", run.stderr());
}

#[test]
fn a_variable_the_user_set_wins() {
    let env = [("SENTINIT_PROC_ROOT", fixture("docker-v1-systemd")), ("DOCKER_CONTAINER_ID", "set-by-the-user".into())];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = workload(&[], &env);
    assert_eq!(run.workload_env().get("DOCKER_CONTAINER_ID").map(String::as_str), Some("set-by-the-user"));
    // What sentinit prints is what the workload got: START, END and --identity.
    let stderr = run.stderr();
    assert!(stderr.contains("START container=set-by-the-user task=unknown"), "{stderr}");
    assert!(stderr.contains("END container=set-by-the-user task=unknown"), "{stderr}");
    let json = identity(&[], &env).json();
    assert_eq!(json["container_id"], "set-by-the-user", "{json}");
    assert_eq!(json["container_id_source"], "environment", "{json}");
}

#[test]
fn the_task_id_follows_the_task_arn_the_user_set() {
    let dir = scratch_dir("metadata-explicit");
    let file = dir.join("ecs-container-metadata.json");
    std::fs::write(&file, METADATA_INITIAL).unwrap();
    let user_arn = "arn:aws:ecs:eu-central-1:444455556666:task/staging/0123456789abcdef0123456789abcdef";
    let base = [
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_FILE", file.to_string_lossy().into_owned()),
        ("ECS_TASK_ARN", user_arn.to_string()),
    ];
    let env: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let run = workload(&[], &env);
    let vars = run.workload_env();
    assert_eq!(vars.get("ECS_TASK_ARN").map(String::as_str), Some(user_arn));
    assert_eq!(vars.get("ECS_TASK_ID").map(String::as_str), Some("0123456789abcdef0123456789abcdef"), "{vars:?}");
    // The rest the user did not set still comes from the file.
    assert_eq!(vars.get("ECS_TASK_FAMILY").map(String::as_str), Some("web"));
    assert!(run.stderr().contains(&format!("task={user_arn}")), "{}", run.stderr());
    let json = identity(&[], &env).json();
    assert_eq!(json["task_arn"], user_arn, "{json}");
    assert_eq!(json["task_arn_source"], "environment");
    assert_eq!(json["task_id"], "0123456789abcdef0123456789abcdef");

    // An ECS_TASK_ID the user set too is theirs, and so are variables set empty.
    let mut env = env;
    env.push(("ECS_TASK_ID", "my-task"));
    env.push(("ECS_CLUSTER", ""));
    let vars = workload(&[], &env).workload_env();
    assert_eq!(vars.get("ECS_TASK_ID").map(String::as_str), Some("my-task"));
    assert_eq!(vars.get("ECS_CLUSTER").map(String::as_str), Some(""));
    let json = identity(&[], &env).json();
    assert_eq!(json["task_id"], "my-task", "{json}");
    assert_eq!(json["cluster"], Value::Null, "set empty by the user, not filled from the file: {json}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_missing_or_garbled_proc_resolves_nothing_and_still_runs() {
    let dir = scratch_dir("garbled");
    std::fs::create_dir_all(dir.join("self")).unwrap();
    std::fs::write(dir.join("self/cgroup"), b"\xff\xfe not a cgroup file\n:::\n12\n").unwrap();
    std::fs::write(dir.join("self/mountinfo"), b"1 2\n\n\xff").unwrap();
    for root in [dir.to_string_lossy().into_owned(), "/nonexistent/proc".to_string()] {
        let json = identity(&[], &[("SENTINIT_PROC_ROOT", &root), ("SENTINIT_SYS_ROOT", "/nonexistent/sys")]).json();
        assert_eq!(json["container_id"], Value::Null, "{root}: {json}");
        let run = workload(&[], &[("SENTINIT_PROC_ROOT", &root)]);
        assert!(!run.workload_env().contains_key("DOCKER_CONTAINER_ID"));
    }
    let _ = std::fs::remove_dir_all(dir);
}

const METADATA_INITIAL: &str = "{\n\t\"Cluster\": \"prod\",\n\t\"ContainerInstanceARN\": \"arn:aws:ecs:us-west-2:111122223333:container-instance/prod/5c0b1e2d3f4a5b6c7d8e9f0a1b2c3d4e\",\n\t\"TaskARN\": \"arn:aws:ecs:us-west-2:111122223333:task/prod/feea4648b33480a0508ca2d215f7e5c1\",\n\t\"TaskDefinitionFamily\": \"web\",\n\t\"TaskDefinitionRevision\": \"42\",\n\t\"ContainerName\": \"app\",\n\t\"AvailabilityZone\": \"us-west-2a\",\n\t\"HostPrivateIPv4Address\": \"10.0.1.23\"\n}";

fn metadata_ready(container_id: &str) -> String {
    METADATA_INITIAL.replace(
        "\t\"AvailabilityZone\"",
        &format!("\t\"ContainerID\": \"{container_id}\",\n\t\"DockerContainerName\": \"/ecs-web-42-app-b4e2d6f8a0c2e4f6a801\",\n\t\"ImageID\": \"sha256:9f2c\",\n\t\"ImageName\": \"web:1.8.3\",\n\t\"PortMappings\": [{{\"ContainerPort\": 8080, \"HostPort\": 32768, \"BindIp\": \"0.0.0.0\", \"Protocol\": \"tcp\"}}],\n\t\"Networks\": [{{\"NetworkMode\": \"bridge\", \"IPv4Addresses\": [\"172.17.0.3\"]}}],\n\t\"MetadataFileStatus\": \"READY\",\n\t\"AvailabilityZone\""),
    )
}

#[test]
fn metadata_file_gives_the_task_at_once_and_cgroup_the_container() {
    let dir = scratch_dir("metadata-initial");
    let file = dir.join("ecs-container-metadata.json");
    std::fs::write(&file, METADATA_INITIAL).unwrap();
    let env = [
        ("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge")),
        ("ECS_CONTAINER_METADATA_FILE", file.to_string_lossy().into_owned()),
    ];
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let json = identity(&[], &env).json();
    assert_eq!(json["container_id"], "e29e9af042db8caad4f6e852fd2d1c360e6e192108eb3720c3506e506bc051da");
    assert_eq!(json["container_id_source"], "cgroup");
    assert_eq!(json["task_arn"], "arn:aws:ecs:us-west-2:111122223333:task/prod/feea4648b33480a0508ca2d215f7e5c1");
    assert_eq!(json["task_arn_source"], "metadata-file");
    assert_eq!(json["task_id"], "feea4648b33480a0508ca2d215f7e5c1");

    let vars = workload(&[], &env).workload_env();
    for (name, value) in [
        ("ECS_TASK_ARN", "arn:aws:ecs:us-west-2:111122223333:task/prod/feea4648b33480a0508ca2d215f7e5c1"),
        ("ECS_TASK_ID", "feea4648b33480a0508ca2d215f7e5c1"),
        ("ECS_CLUSTER", "prod"),
        ("ECS_TASK_FAMILY", "web"),
        ("ECS_TASK_REVISION", "42"),
        ("ECS_CONTAINER_NAME", "app"),
    ] {
        assert_eq!(vars.get(name).map(String::as_str), Some(value), "{name}");
    }
    let _ = std::fs::remove_dir_all(dir);
}

/// Writes `contents` over `file` the way the ECS agent does: a temporary file, renamed.
fn replace_atomically(file: &std::path::Path, contents: &str) {
    let temporary = file.with_extension("json.tmp");
    std::fs::write(&temporary, contents).unwrap();
    std::fs::rename(&temporary, file).unwrap();
}

#[test]
fn under_ecs_the_metadata_file_is_awaited_instead_of_the_pause_containers_bind_mounts() {
    // ECS on AL2023, awsvpc: private cgroupns (cgroup "/"), bind mounts of the pause container, and a
    // metadata file that is INITIAL when the container starts and READY ~300 ms later.
    let own = "7c0d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b7c6d";
    let root = fixture("ecs-al2023-v2-awsvpc");
    for tag in ["identity", "workload"] {
        let dir = scratch_dir(&format!("metadata-awsvpc-{tag}"));
        let file = dir.join("ecs-container-metadata.json");
        std::fs::write(&file, METADATA_INITIAL).unwrap();
        let writer = {
            let file = file.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(300));
                replace_atomically(&file, &metadata_ready(own));
            })
        };
        let path = file.to_string_lossy().into_owned();
        let env = [("SENTINIT_PROC_ROOT", root.as_str()), ("ECS_CONTAINER_METADATA_FILE", path.as_str())];
        let args = ["--identity-timeout", "3s"];
        if tag == "identity" {
            let json = identity(&args, &env).json();
            assert_eq!(json["container_id"], own, "{json}");
            assert_eq!(json["container_id_source"], "metadata-file", "{json}");
            assert_eq!(json["task_arn_source"], "metadata-file", "{json}");
        } else {
            let run = workload(&args, &env);
            assert_eq!(run.workload_env().get("DOCKER_CONTAINER_ID").map(String::as_str), Some(own));
            assert!(run.stderr().contains(&format!("START container={own} ")), "{}", run.stderr());
        }
        writer.join().unwrap();
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn a_ready_metadata_file_with_a_malformed_container_id_gives_no_id() {
    let dir = scratch_dir("metadata-bad-id");
    let file = dir.join("ecs-container-metadata.json");
    let path = file.to_string_lossy().into_owned();
    for bad in ["3edf87da4c0e", "../../etc/passwd", "e40860c2b55a4200b03c3197f6c59714-12345678901"] {
        std::fs::write(&file, metadata_ready(bad)).unwrap();
        let run = workload(
            &["--identity-timeout", "500ms"],
            &[("SENTINIT_PROC_ROOT", &fixture("host-login-session")), ("ECS_CONTAINER_METADATA_FILE", &path)],
        );
        let env = run.workload_env();
        assert!(!env.contains_key("DOCKER_CONTAINER_ID"), "{bad}: {env:?}");
        assert_eq!(env.get("ECS_TASK_FAMILY").map(String::as_str), Some("web"), "the rest of the file counts");
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_fifo_dev_zero_or_huge_metadata_file_cannot_hold_up_the_workload() {
    let dir = scratch_dir("metadata-hostile");
    let fifo = dir.join("fifo.json");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("run mkfifo");
    assert!(status.success());
    let huge = dir.join("huge.json");
    // Valid JSON of 2 MiB: only the size limit can turn it away.
    std::fs::write(
        &huge,
        format!("{{\"TaskARN\": \"arn:aws:ecs:us-west-2:1:task/x\", \"Pad\": \"{}\"}}", "x".repeat(2 << 20)),
    )
    .unwrap();
    for (path, says) in [
        (fifo.to_string_lossy().into_owned(), "not a regular file"),
        ("/dev/zero".to_string(), "not a regular file"),
        (huge.to_string_lossy().into_owned(), "larger than 1024 KiB"),
    ] {
        let run = workload(
            &["--identity-timeout", "1s"],
            &[("SENTINIT_PROC_ROOT", &fixture("host-login-session")), ("ECS_CONTAINER_METADATA_FILE", &path)],
        );
        assert_eq!(run.output.status.code(), Some(0), "{path}: {:?} {}", run.output.status, run.stderr());
        assert!(
            run.elapsed < Duration::from_millis(1000) + identity_support::slack(700),
            "{path}: workload started after {:?}",
            run.elapsed
        );
        let env = run.workload_env();
        assert!(!env.contains_key("ECS_TASK_ARN"), "{path}");
        let stderr = run.stderr();
        let warnings: Vec<&str> = stderr.lines().filter(|l| l.starts_with("sentinit: warning:")).collect();
        assert_eq!(warnings.len(), 1, "{path}: {stderr}");
        assert!(warnings[0].contains(says), "{path}: {}", warnings[0]);
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_ready_metadata_file_beats_the_pause_containers_bind_mounts() {
    let own = "dc6268edf99134400171a2666700e47fdc060bb15ecbf2fa3f7fd53d9f0549a5";
    let dir = scratch_dir("metadata-ready");
    let file = dir.join("ecs-container-metadata.json");
    std::fs::write(&file, metadata_ready(own)).unwrap();
    let root = fixture("ecs-al2023-v2-awsvpc");
    let path = file.to_string_lossy().into_owned();
    let json = identity(&[], &[("SENTINIT_PROC_ROOT", &root), ("ECS_CONTAINER_METADATA_FILE", &path)]).json();
    assert_eq!(json["container_id"], own, "{json}");
    assert_eq!(json["container_id_source"], "metadata-file");

    // Without the file, mountinfo can only name the pause container: a known limit, documented.
    let json = identity(&[], &[("SENTINIT_PROC_ROOT", &root)]).json();
    assert_eq!(json["container_id"], "f465abb05ac8817a089ba49f40492f1ae5c74c8f10da1d92f4bab68493e0ba9c");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_metadata_file_is_reread_until_ready() {
    let own = "4f0c2b9a8e7d6c5b4a39281706f5e4d3c2b1a0f9e8d7c6b5a4938271605f4e3d";
    let dir = scratch_dir("metadata-poll");
    let file = dir.join("ecs-container-metadata.json");
    std::fs::write(&file, METADATA_INITIAL).unwrap();
    let path = file.to_string_lossy().into_owned();
    let writer = {
        let file = file.clone();
        let ready = metadata_ready(own);
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(400));
            replace_atomically(&file, &ready);
        })
    };
    let run = workload(
        &["--identity-timeout", "5s"],
        &[("SENTINIT_PROC_ROOT", &fixture("host-login-session")), ("ECS_CONTAINER_METADATA_FILE", &path)],
    );
    writer.join().unwrap();
    let env = run.workload_env();
    assert_eq!(env.get("DOCKER_CONTAINER_ID").map(String::as_str), Some(own), "{}", run.stderr());
    assert_eq!(env.get("ECS_TASK_FAMILY").map(String::as_str), Some("web"));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_metadata_file_that_never_gets_ready_costs_at_most_the_budget() {
    let dir = scratch_dir("metadata-never");
    let file = dir.join("ecs-container-metadata.json");
    std::fs::write(&file, METADATA_INITIAL).unwrap();
    let path = file.to_string_lossy().into_owned();
    let run = workload(
        &["--identity-timeout", "700ms"],
        &[("SENTINIT_PROC_ROOT", &fixture("host-login-session")), ("ECS_CONTAINER_METADATA_FILE", &path)],
    );
    let env = run.workload_env();
    assert!(!env.contains_key("DOCKER_CONTAINER_ID"));
    assert_eq!(env.get("ECS_TASK_ID").map(String::as_str), Some("feea4648b33480a0508ca2d215f7e5c1"));
    assert!(run.elapsed < Duration::from_millis(700) + identity_support::slack(700), "{:?}", run.elapsed);
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_malformed_metadata_file_is_one_warning() {
    let dir = scratch_dir("metadata-bad");
    let file = dir.join("ecs-container-metadata.json");
    std::fs::write(&file, "{\"TaskARN\": \"arn:aws:ecs:us-west-2:1:task/x\", ").unwrap();
    let path = file.to_string_lossy().into_owned();
    let run = workload(
        &[],
        &[("SENTINIT_PROC_ROOT", &fixture("host-login-session")), ("ECS_CONTAINER_METADATA_FILE", &path)],
    );
    let env = run.workload_env();
    assert!(!env.contains_key("ECS_TASK_ARN"));
    assert_eq!(run.stderr().matches("malformed JSON").count(), 1, "{}", run.stderr());
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn without_ecs_variables_or_agent_url_nothing_touches_the_network() {
    if std::process::Command::new("strace").arg("-V").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI=true but strace is missing: cannot check for network use");
        eprintln!("skipped: strace is not installed");
        return;
    }
    let trace = |extra: &[(&str, &str)]| -> String {
        let dir = scratch_dir(&format!("strace-{}", extra.len()));
        let log = dir.join("trace");
        let status = std::process::Command::new("strace")
            .args(["-f", "-qq", "-e", "trace=socket,connect", "-o"])
            .arg(&log)
            .args([&identity_support::bin(), "--identity-timeout", "300ms", "--", "true"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("SENTINIT_PROC_ROOT", fixture("ecs-ec2-v1-bridge"))
            .envs(extra.iter().copied())
            .stderr(std::process::Stdio::null())
            .status()
            .expect("run strace");
        assert!(status.success());
        let text = std::fs::read_to_string(&log).unwrap();
        let _ = std::fs::remove_dir_all(dir);
        text
    };
    // The ECS agent's other variables (task protection, credentials) are not a reason to connect.
    let quiet = trace(&[
        ("ECS_AGENT_URI", "http://127.0.0.1:9/api/7d1a2b3c"),
        ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/0f1e"),
    ]);
    assert!(!quiet.contains("AF_INET"), "{quiet}");
    assert!(!quiet.contains("connect("), "{quiet}");
    // The same probe sees the connection when there is an endpoint (nothing listens on port 9).
    let asked = trace(&[("ECS_CONTAINER_METADATA_URI_V4", "http://127.0.0.1:9/v4/7d1a2b3c")]);
    assert!(asked.contains("connect("), "{asked}");
}

#[test]
fn the_cgroup_version_comes_from_sys_when_proc_has_no_cgroup_file() {
    let proc_dir = scratch_dir("no-cgroup-proc");
    std::fs::create_dir_all(proc_dir.join("self")).unwrap();
    let sys_dir = scratch_dir("unified-sys");
    std::fs::create_dir_all(sys_dir.join("fs/cgroup")).unwrap();
    std::fs::write(sys_dir.join("fs/cgroup/cgroup.controllers"), "cpuset cpu io memory pids\n").unwrap();
    let proc_root = proc_dir.to_string_lossy().into_owned();
    let sys_root = sys_dir.to_string_lossy().into_owned();
    let json = identity(&[], &[("SENTINIT_PROC_ROOT", &proc_root), ("SENTINIT_SYS_ROOT", &sys_root)]).json();
    assert_eq!(json["cgroup_version"], 2, "{json}");
    let json = identity(&[], &[("SENTINIT_PROC_ROOT", &proc_root), ("SENTINIT_SYS_ROOT", "/nonexistent")]).json();
    assert_eq!(json["cgroup_version"], Value::Null, "{json}");
    let _ = std::fs::remove_dir_all(proc_dir);
    let _ = std::fs::remove_dir_all(sys_dir);
}
