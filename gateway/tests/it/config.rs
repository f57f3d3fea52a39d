//! Configuration files: the annotated example is valid, and each kind of
//! mistake is reported with its file:line:col.

use std::path::Path;
use yiwang_gateway::config::{Config, SecretSource};

/// A folder with the example config and the adapters it names.
fn example_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/yiwang.example.toml");
    std::fs::copy(example, dir.path().join("yiwang.toml")).expect("copy example");
    std::fs::create_dir(dir.path().join("adapters")).expect("mkdir");
    std::fs::copy(
        yiwang_artifacts::MARKET_REGULATION,
        dir.path().join("adapters/market_regulation.wasm"),
    )
    .expect("copy");
    std::fs::copy(
        yiwang_artifacts::HOUSING_CONSTRUCTION,
        dir.path().join("adapters/housing_construction.wasm"),
    )
    .expect("copy");
    // The adapter publisher key it trusts.
    std::fs::create_dir(dir.path().join("keys")).expect("mkdir");
    yiwang_gateway::publisher::PublisherKey::generate()
        .write(
            &dir.path().join("keys/publisher.key"),
            &dir.path().join("keys/publisher.pub"),
        )
        .expect("publisher key");
    // The certificates, keys and CRLs it names.
    yiwang_pki::Pki::generate(
        &dir.path().join("pki"),
        &["market-regulation", "housing-construction"],
    )
    .expect("pki");
    dir
}

/// Appended to every bad file: the `[tls]` every config needs.
const TLS: &str = "\n[tls]\ncert = \"pki/gateway.crt\"\nkey = \"pki/gateway.key\"\nclient-ca = [\"pki/bureau-ca.crt\"]\n";

#[test]
fn the_annotated_example_is_valid() {
    let dir = example_dir();
    let loaded = Config::load(&dir.path().join("yiwang.toml")).unwrap_or_else(|e| panic!("{e}"));
    let c = &loaded.config;
    assert_eq!(c.networks.len(), 2);
    let mr = c.networks["market-regulation"].get_ref();
    assert_eq!(*mr.concurrency.get_ref(), 8);
    assert_eq!(mr.limits.get_ref().cpu_time.as_millis(), 2000);
    assert_eq!(mr.retry.get_ref().max_attempts, Some(50));
    assert_eq!(
        mr.secrets["username"].get_ref(),
        &SecretSource::Env("YIWANG_MR_USERNAME".into())
    );
    let route = &c.items["ZJ-SGXK-001"].get_ref().route;
    assert_eq!(route[1].get_ref().after[0].get_ref(), "market-regulation");
    assert_eq!(c.adapters.publisher_keys.len(), 1);
    assert!(!c.adapters.allow_unsigned);
    loaded.adapter_trust().expect("the trusted key reads");
    // Defaults fill what a network leaves out.
    let hc = c.networks["housing-construction"].get_ref();
    assert_eq!(
        hc.limits.get_ref(),
        &yiwang_gateway::runtime::Limits::default()
    );
}

/// Check `text` (with the example's adapters present) and return the errors.
fn errors(text: &str) -> String {
    let dir = example_dir();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, format!("{text}{TLS}")).expect("write");
    match Config::load(&path) {
        Ok(_) => panic!("expected errors for:\n{text}"),
        Err(e) => e
            .to_string()
            .replace(&format!("{}/", dir.path().display()), ""),
    }
}

const NET: &str = "[networks.mr]\nadapter = \"adapters/market_regulation.wasm\"\nendpoints = [\"http://127.0.0.1:1\"]\nplaintext = true\n";

#[test]
fn unknown_keys_are_errors_with_their_place() {
    let e = errors(&format!("{NET}concurency = 3\n"));
    assert!(
        e.starts_with("bad.toml:5:1: unknown field `concurency`"),
        "{e}"
    );
    let e = errors(&format!("{NET}[networks.mr.limits]\ncpu-time = 5\n"));
    assert!(
        e.starts_with("bad.toml:6:1: unknown field `cpu-time`"),
        "{e}"
    );
}

#[test]
fn wrong_types_name_the_place() {
    let e = errors(&format!("{NET}concurrency = \"eight\"\n"));
    assert!(e.starts_with("bad.toml:5:15:"), "{e}");
    assert!(
        e.contains("invalid type: string \"eight\", expected u32"),
        "{e}"
    );
}

#[test]
fn semantic_mistakes_are_all_reported_at_once() {
    let text = format!(
        "{NET}concurrency = 0\n\
         [networks.ghost]\nadapter = \"adapters/missing.wasm\"\nendpoints = [\"ftp://x\"]\n\
         [items.\"A-1\"]\nroute = [\n  {{ network = \"mr\" }},\n  {{ network = \"nowhere\" }},\n  {{ network = \"ghost\", after = [\"later\"], inputs = {{ n = \"mr.colour\" }} }},\n]\n"
    );
    let e = errors(&text);
    let lines: Vec<&str> = e.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bad.toml:5:15: network `mr`: concurrency must be at least 1")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bad.toml:7:11: network `ghost`: adapter")
                && l.contains("does not exist")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bad.toml:8:14: network `ghost`: endpoint \"ftp://x\"")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("bad.toml:12:15: item `A-1`: route names network `nowhere`")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("`ghost` waits for `later`, which is not an earlier step")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l
                .contains("input `n` of `ghost` reads from `mr`, which `ghost` does not wait for")),
        "{e}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("field `colour` is not one of network_case_number")),
        "{e}"
    );
    assert_eq!(lines.len(), 7, "{e}");
}

#[test]
fn cli_config_check_reports_and_exits_non_zero() {
    let dir = example_dir();
    let good = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .args(["config", "check"])
        .arg(dir.path().join("yiwang.toml"))
        .output()
        .expect("run yiwang");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("2 networks, 2 items"));

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, format!("{NET}colour = 1\n")).expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_yiwang"))
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .expect("run yiwang");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("bad.toml:5:1: unknown field `colour`"),
        "{stdout}"
    );
}

#[test]
fn every_edge_is_mtls_unless_a_network_says_plaintext() {
    let e = errors(
        "[networks.mr]\nadapter = \"adapters/market_regulation.wasm\"\nendpoints = [\"http://127.0.0.1:1\"]\n\
         [networks.hc]\nadapter = \"adapters/housing_construction.wasm\"\nendpoints = [\"https://10.0.0.1\"]\n\
         [networks.hc2]\nadapter = \"adapters/housing_construction.wasm\"\nendpoints = [\"https://10.0.0.2\"]\n\
         tls = { ca = [], cert = \"pki/none.crt\", key = \"pki/gateway.key\", pin-sha256 = [\"abc\"] }\n",
    );
    assert!(
        e.contains("network `mr`: http://127.0.0.1:1 is plaintext http"),
        "{e}"
    );
    assert!(
        e.contains("network `hc`: https://10.0.0.1 is https but there is no tls table"),
        "{e}"
    );
    assert!(e.contains("network `hc2`: tls.ca is empty"), "{e}");
    assert!(e.contains("network `hc2`: tls.cert file"), "{e}");
    assert!(
        e.contains("tls.pin-sha256 \"abc\" is not the base64"),
        "{e}"
    );
    // Without [tls] nothing listens.
    let dir = example_dir();
    let text = std::fs::read_to_string(dir.path().join("yiwang.toml")).expect("example");
    let start = text.find("\n[tls]\n").expect("[tls] in the example");
    let end = text[start..]
        .find("\n# ──")
        .map(|i| start + i)
        .expect("section end");
    let without = format!("{}{}", &text[..start], &text[end..]);
    let path = dir.path().join("no-tls.toml");
    std::fs::write(&path, without).expect("write");
    let e = Config::load(&path).expect_err("no [tls]").to_string();
    assert!(e.contains("[tls] is missing"), "{e}");
}

#[test]
fn a_publisher_key_that_is_missing_or_not_a_key_is_an_error() {
    let text =
        "[adapters]\npublisher-keys = [\"keys/gone.pub\", \"adapters/market_regulation.wasm\"]\n";
    let e = errors(text);
    assert!(
        e.contains("bad.toml:2:19: [adapters] publisher-keys: keys/gone.pub: No such file"),
        "{e}"
    );
    assert!(
        e.contains("bad.toml:2:36: [adapters] publisher-keys: adapters/market_regulation.wasm: not an Ed25519 public key"),
        "{e}"
    );
}

#[test]
fn config_check_warns_when_adapters_would_be_refused_or_unchecked() {
    let dir = example_dir();
    let example = std::fs::read_to_string(dir.path().join("yiwang.toml")).expect("read");
    let loaded = Config::parse(&example, &dir.path().join("yiwang.toml")).expect("valid");
    let warnings = loaded.warnings().join("\n");
    assert!(
        warnings.contains("network `market-regulation`: no signature file")
            && warnings.contains("adapters/market_regulation.wasm.sig"),
        "{warnings}"
    );
    let unsigned = example.replace("# allow-unsigned = false", "allow-unsigned = true");
    let loaded = Config::parse(&unsigned, &dir.path().join("yiwang.toml")).expect("valid");
    let warnings = loaded.warnings().join("\n");
    assert!(warnings.contains("allow-unsigned = true"), "{warnings}");
    assert!(warnings.contains("development only"), "{warnings}");
}

/// `[networks.X.adapter-config]` values come as strings or, sensitive, from
/// the environment or a file like secrets: they resolve to what the adapter
/// reads, the sensitive keys are marked, and a missing variable or file
/// names the network and the key (never a value).
#[test]
fn adapter_config_values_come_from_env_or_a_file_and_are_marked_sensitive() {
    let dir = example_dir();
    std::fs::write(dir.path().join("account.txt"), "ACCT-0042\n").expect("write");
    let text = format!(
        "{NET}[networks.mr.adapter-config]\nmode = \"fast\"\naccount = {{ file = \"account.txt\" }}\napp-key = {{ env = \"YIWANG_TEST_UNSET_APP_KEY\" }}\n{TLS}"
    );
    let path = dir.path().join("cfg.toml");
    std::fs::write(&path, text).expect("write");
    let loaded = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let net = loaded.config.networks["mr"].get_ref();
    let err = loaded
        .resolve_adapter_config("mr", net)
        .expect_err("the variable is not set");
    assert_eq!(
        err.to_string(),
        "network `mr`: adapter-config `app-key`: environment variable YIWANG_TEST_UNSET_APP_KEY is not set"
    );

    let text = format!(
        "{NET}[networks.mr.adapter-config]\nmode = \"fast\"\naccount = {{ file = \"account.txt\" }}\n{TLS}"
    );
    std::fs::write(&path, text).expect("write");
    let loaded = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let resolved = loaded
        .resolve_adapter_config("mr", loaded.config.networks["mr"].get_ref())
        .expect("resolves");
    assert_eq!(resolved.values["account"], "ACCT-0042");
    assert_eq!(resolved.values["mode"], "fast");
    assert!(resolved.sensitive.contains("account"));
    assert!(!resolved.sensitive.contains("mode"));

    let text =
        format!("{NET}[networks.mr.adapter-config]\naccount = {{ file = \"missing.txt\" }}\n{TLS}");
    std::fs::write(&path, text).expect("write");
    let loaded = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let err = loaded
        .resolve_adapter_config("mr", loaded.config.networks["mr"].get_ref())
        .expect_err("no such file");
    assert!(
        err.to_string()
            .starts_with("network `mr`: adapter-config `account`: missing.txt:"),
        "{err}"
    );
    // Neither a string nor a source: the place and what is expected.
    let e = errors(&format!(
        "{NET}[networks.mr.adapter-config]\naccount = {{ vault = \"x\" }}\n"
    ));
    assert!(e.contains("bad.toml:6:"), "{e}");
    assert!(e.contains("expected a string, or a sensitive value"), "{e}");
}
