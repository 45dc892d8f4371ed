//! The fleet path on real parts. Real recordings of the firewall scenario
//! made on two host names (each recorder in its own UTS namespace) and
//! synthetic ones go to a real S3-protocol server: moto, a separate process
//! on loopback. They also go to a `file://` copy. Then they are queried
//! fleet-wide by nft-analyzer, and by DuckDB over the local Hive copy.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use nft_tests::s3::S3Server;
use nft_tests::{firewall_traffic, kernel_lock, recording_dir, workspace_bin, TwoHosts};

fn tool(s3: &S3Server, bin: &str, args: &[&str]) -> Output {
    s3.env(&mut Command::new(workspace_bin(bin)))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{bin}: {e}"))
}

/// Runs a tool that must succeed; its stdout and stderr.
fn ok(s3: &S3Server, bin: &str, args: &[&str]) -> (String, String) {
    let out = tool(s3, bin, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{bin} {args:?}: {stderr}");
    (String::from_utf8_lossy(&out.stdout).into_owned(), stderr)
}

/// Runs a tool that must fail with `code`; its stderr.
fn fails(s3: &S3Server, bin: &str, args: &[&str], code: i32) -> String {
    let out = tool(s3, bin, args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(code), "{bin} {args:?}: {stderr}");
    stderr
}

/// `(uploaded, skipped)` files from push's summary line.
fn pushed(stderr: &str) -> (usize, usize) {
    let line = stderr.lines().find(|l| l.contains("pushed ")).unwrap();
    let num = |after: &str| -> usize {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    let already = line.split("; ").nth(1).unwrap();
    let skipped = already.split_whitespace().next().unwrap().parse().unwrap();
    (num("pushed "), skipped)
}

/// The firewall scenario recorded (b's namespace) by a recorder whose host
/// name is `host`: it runs in a UTS namespace of its own. `extra`: more
/// flags. The recording and the recorder's stderr.
fn record_on(s3: &S3Server, hosts: &TwoHosts, host: &str, extra: &[&str]) -> (PathBuf, String) {
    hosts.b.exec("nft", &["flush ruleset"]).unwrap();
    hosts.b.exec("nft", &[nft_tests::FIREWALL]).unwrap();
    let dir = recording_dir(&format!("fleet-{host}"));
    let mut child = s3
        .env(&mut Command::new("unshare"))
        .args(["--uts", "sh", "-c", "hostname \"$0\" && exec \"$@\"", host])
        .arg(workspace_bin("nft-recorder"))
        .args(["record", "-o"])
        .arg(&dir)
        .args(["--netns", &hosts.b.name, "--host", &hosts.a_ip])
        .args(["--duration", "5"])
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while !dir.join("recording.json").exists() {
        assert!(
            child.try_wait().unwrap().is_none(),
            "the recorder exited early"
        );
        assert!(start.elapsed() < Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(50));
    }
    firewall_traffic(hosts);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{stderr}");
    (dir, stderr)
}

/// Every file of `local` equals its object under `prefix` in `bucket`.
fn same_objects(s3: &S3Server, bucket: &str, prefix: &str, local: &Path) {
    let listing = s3.python(&format!(
        "for o in s3.list_objects_v2(Bucket='{bucket}', Prefix='{prefix}/').get('Contents', []):\n    print(o['Key'])"
    ));
    let mut names: Vec<&str> = listing
        .lines()
        .map(|k| k.rsplit('/').next().unwrap())
        .collect();
    names.sort();
    let mut want: Vec<String> = std::fs::read_dir(local)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    want.sort();
    assert_eq!(names, want, "objects under {prefix}");
    for name in want {
        let code = format!(
            "import hashlib\nb = s3.get_object(Bucket='{bucket}', Key='{prefix}/{name}')['Body'].read()\n\
             print(hashlib.sha256(b).hexdigest())"
        );
        let theirs = s3.python(&code);
        let ours = Command::new("sha256sum")
            .arg(local.join(&name))
            .output()
            .unwrap();
        let ours = String::from_utf8_lossy(&ours.stdout);
        assert_eq!(
            theirs.trim(),
            ours.split_whitespace().next().unwrap(),
            "{name}"
        );
    }
}

/// `prefix` of a push's printed URL, below the bucket.
fn key_prefix(url: &str, bucket: &str) -> String {
    url.trim()
        .strip_prefix(&format!("s3://{bucket}/"))
        .unwrap()
        .to_string()
}

fn csv(s3: &S3Server, recs: &[&str], query: &str) -> String {
    let mut args = vec!["sql"];
    args.extend(recs);
    args.extend(["--query", query, "--format", "csv"]);
    ok(s3, "nft-analyzer", &args).0
}

#[test]
fn recordings_pushed_to_s3_are_queried_as_one_fleet() {
    let s3 = S3Server::start();
    s3.create_bucket("fleet");
    let url = "s3://fleet/recordings";
    // box-a is pushed after recording; box-b while recording (segments
    // closed every second go as they close).
    let (a, (b, recorded_b)) = {
        let _kernel = kernel_lock();
        let hosts = TwoHosts::new(237).unwrap();
        let during = ["--push", url, "--segment-seconds", "1"];
        let a = record_on(&s3, &hosts, "box-a", &[]).0;
        (a, record_on(&s3, &hosts, "box-b", &during))
    };
    let (a, b) = (a.to_str().unwrap(), b.to_str().unwrap());
    let while_recording: usize = recorded_b
        .split(" segment(s) while recording")
        .next()
        .and_then(|t| t.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{recorded_b}"));
    assert!(while_recording >= 2, "{recorded_b}");

    // Push: everything the first time (box-b: nothing), nothing the second.
    let mut prefixes = Vec::new();
    for (rec, host) in [(a, "box-a"), (b, "box-b")] {
        let files = std::fs::read_dir(rec).unwrap().count();
        let (out, err) = ok(&s3, "nft-recorder", &["push", rec, url]);
        let id = Path::new(rec).file_name().unwrap().to_str().unwrap();
        let at = format!("{url}/host={host}/date=");
        assert!(out.trim().starts_with(&at), "{out}");
        assert!(out.trim().ends_with(&format!("/{id}")), "{out}");
        let first = if host == "box-a" {
            (files, 0)
        } else {
            (0, files)
        };
        assert_eq!(pushed(&err), first, "{err}");
        let (again, err) = ok(&s3, "nft-recorder", &["push", rec, url]);
        assert_eq!(again, out);
        assert_eq!(pushed(&err), (0, files), "{err}");
        let prefix = key_prefix(&out, "fleet");
        same_objects(&s3, "fleet", &prefix, Path::new(rec));
        prefixes.push(prefix);
    }

    // Every shipped query over the bucket equals the same query over the
    // local directories, but for the recordings' names (`<host>/<id>`), as
    // sets of rows (rows that tie in a query's ORDER BY come in any order).
    let names = ok(&s3, "nft-analyzer", &["queries"]).0;
    for query in names.lines().filter_map(|l| l.split_whitespace().next()) {
        let rows = |text: String| {
            let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
            lines[1..].sort();
            lines
        };
        let fleet = csv(&s3, &[url], query)
            .replace("box-a/", "")
            .replace("box-b/", "");
        assert_eq!(rows(fleet), rows(csv(&s3, &[a, b], query)), "query {query}");
    }

    // The URL is the partition filter: one host's prefix reads that host's
    // recording only.
    let (out, err) = ok(
        &s3,
        "nft-analyzer",
        &[
            "sql",
            &format!("{url}/host=box-a"),
            "SELECT host, events FROM recordings",
            "--format",
            "csv",
        ],
    );
    assert!(err.contains("fetched 1 recording(s)"), "{err}");
    let events_a = nft_tests::manifest(Path::new(a))["events"]
        .as_u64()
        .unwrap();
    assert_eq!(out, format!("host,events\nbox-a,{events_a}\n"));

    // The same layout in a directory, which DuckDB reads as Hive partitions.
    let copy = std::env::temp_dir().join(format!("nt-fleet-copy-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    let copy_url = format!("file://{}", copy.display());
    for rec in [a, b] {
        ok(&s3, "nft-recorder", &["push", rec, &copy_url]);
        let (_, err) = ok(&s3, "nft-recorder", &["push", rec, &copy_url]);
        assert_eq!(pushed(&err).0, 0, "{err}");
    }
    let by_host = "SELECT r.host, count(*) AS n FROM events e JOIN recordings r USING (recording) \
                   GROUP BY r.host ORDER BY r.host";
    let ours = ok(
        &s3,
        "nft-analyzer",
        &["sql", url, by_host, "--format", "csv"],
    )
    .0;
    let duck = nft_tests::duckdb(
        &copy,
        "SELECT host, count(*) FROM read_parquet('{dir}/**/events-*.parquet', \
         hive_partitioning = true) GROUP BY host ORDER BY host",
    )
    .unwrap();
    let duck: String = duck
        .iter()
        .map(|r| format!("{},{}\n", r[0].as_str().unwrap(), r[1]))
        .collect();
    assert_eq!(ours, format!("host,n\n{duck}"));
    let from_copy = ok(
        &s3,
        "nft-analyzer",
        &["sql", &copy_url, by_host, "--format", "csv"],
    )
    .0;
    assert_eq!(from_copy, ours, "file:// reads like s3://");
    let _ = std::fs::remove_dir_all(&copy);
}

#[test]
fn an_interrupted_push_resumes_and_ends_byte_identical() {
    let s3 = S3Server::start();
    s3.create_bucket("fleet");
    // Segments of 3 M events are over the 8 MiB part size: multipart.
    let dir = recording_dir("fleet-synth");
    let spec = nft_analyzer::synth::Spec {
        events: 6_000_000,
        segment_rows: 3_000_000,
        host: "synth-1".into(),
        ..Default::default()
    };
    nft_analyzer::synth::generate(&dir, &spec).unwrap();
    let big = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| e.as_ref().unwrap().metadata().unwrap().len() > 8 << 20)
        .count();
    assert!(big >= 1, "no segment over the part size");
    let rec = dir.to_str().unwrap();
    let url = "s3://fleet/f";

    // The server stops answering mid-way (SIGSTOP keeps its state): the
    // push gives up after its retry timeout with an error naming the URL.
    let mut push = s3
        .env(&mut Command::new(workspace_bin("nft-recorder")))
        .args([
            "push",
            rec,
            url,
            "--retry-timeout",
            "2",
            "--request-timeout",
            "5",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    s3.signal(libc::SIGSTOP);
    let start = Instant::now();
    let status = push.wait().unwrap();
    let waited = start.elapsed();
    s3.signal(libc::SIGCONT);
    let mut err = String::new();
    std::io::Read::read_to_string(push.stderr.as_mut().unwrap(), &mut err).unwrap();
    let files = std::fs::read_dir(&dir).unwrap().count();
    if status.success() {
        // The push beat the stop: nothing to resume, but still checked.
        eprintln!("the push finished before the server stopped: {err}");
    } else {
        assert!(err.contains("s3://fleet/f/host=synth-1/"), "{err}");
        // One unanswered request (5 s), the retries' 2 s, the abort's 5 s.
        assert!(
            waited < Duration::from_secs(30),
            "the push took {waited:?} to fail"
        );
    }
    let (out, err) = ok(&s3, "nft-recorder", &["push", rec, url]);
    let (uploaded, skipped) = pushed(&err);
    assert_eq!(uploaded + skipped, files, "{err}");
    if !status.success() {
        assert!(uploaded >= 1, "{err}");
    }
    same_objects(&s3, "fleet", &key_prefix(&out, "fleet"), &dir);
    // The manifest went last: the interrupted push left none behind.
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_fleet_input_gets_clear_errors_naming_the_url() {
    let s3 = S3Server::start();
    s3.create_bucket("fleet");
    let dir = recording_dir("fleet-bad");
    let spec = nft_analyzer::synth::Spec {
        events: 20_000,
        segment_rows: 10_000,
        ..Default::default()
    };
    nft_analyzer::synth::generate(&dir, &spec).unwrap();
    let rec = dir.to_str().unwrap();

    // Arguments: refused before any request (exit 2); `record --push` to a
    // missing bucket before anything is attached.
    let out = fails(
        &s3,
        "nft-recorder",
        &[
            "record",
            "-o",
            "/tmp/nt-fleet-never",
            "--push",
            "s3://nobucket/p",
        ],
        2,
    );
    assert!(
        out.contains("--push: s3://nobucket/") && out.contains("NoSuchBucket"),
        "{out}"
    );
    assert!(!Path::new("/tmp/nt-fleet-never").exists());
    let err = fails(&s3, "nft-recorder", &["push", rec, "http://x/y"], 2);
    assert!(
        err.contains("expected s3://BUCKET/PREFIX or file:///DIR"),
        "{err}"
    );
    let err = fails(
        &s3,
        "nft-recorder",
        &["push", "/nonexistent", "s3://fleet/p"],
        2,
    );
    assert!(err.contains("/nonexistent is not a recording"), "{err}");
    // A missing bucket, on both sides.
    let err = fails(&s3, "nft-recorder", &["push", rec, "s3://nobucket/p"], 1);
    assert!(
        err.contains("s3://nobucket/") && err.contains("NoSuchBucket"),
        "{err}"
    );
    let err = fails(
        &s3,
        "nft-analyzer",
        &["sql", "s3://nobucket/p", "SELECT 1"],
        2,
    );
    assert!(
        err.contains("s3://nobucket/p") && err.contains("NoSuchBucket"),
        "{err}"
    );
    // A prefix without recordings.
    let err = fails(
        &s3,
        "nft-analyzer",
        &["sql", "s3://fleet/empty", "SELECT 1"],
        2,
    );
    assert!(
        err.contains("s3://fleet/empty: no recording there"),
        "{err}"
    );
    // An unreachable endpoint: an error within the retry time.
    let start = Instant::now();
    let out = Command::new(workspace_bin("nft-recorder"))
        .args(["push", rec, "s3://fleet/p", "--retry-timeout", "2"])
        .env("AWS_ENDPOINT", "http://127.0.0.1:9")
        .env("AWS_ALLOW_HTTP", "true")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("s3://fleet/"), "{err}");
    assert!(
        start.elapsed() < Duration::from_secs(60),
        "{:?}",
        start.elapsed()
    );

    // A recording of a newer schema among older ones: named by its URL.
    ok(&s3, "nft-recorder", &["push", rec, "s3://fleet/mixed"]);
    let newer = recording_dir("fleet-newer");
    std::fs::create_dir_all(&newer).unwrap();
    for e in std::fs::read_dir(&dir).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), newer.join(e.file_name())).unwrap();
    }
    let manifest = newer.join("recording.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut json: serde_json::Value = serde_json::from_str(&text).unwrap();
    json["schema_version"] = 99.into();
    json["host"] = "box-new".into();
    std::fs::write(&manifest, json.to_string()).unwrap();
    ok(
        &s3,
        "nft-recorder",
        &["push", newer.to_str().unwrap(), "s3://fleet/mixed"],
    );
    let err = fails(
        &s3,
        "nft-analyzer",
        &["sql", "s3://fleet/mixed", "SELECT 1"],
        2,
    );
    assert!(
        err.contains("s3://fleet/mixed/host=box-new/") && err.contains("schema version 99"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&newer);
}
