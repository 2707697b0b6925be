use super::*;

#[test]
fn shell_words() {
    assert_eq!(
        split_shell_words(r#"sh -c "echo 'a b' \"q\"" x\ y"#).unwrap(),
        vec!["sh", "-c", "echo 'a b' \"q\"", "x y"]
    );
    assert!(split_shell_words("echo 'open").is_err());
    assert_eq!(split_shell_words("  ").unwrap(), Vec::<String>::new());
}

#[test]
fn durations() {
    assert_eq!(parse_duration("1s").unwrap(), 1_000_000_000);
    assert_eq!(parse_duration("1m30s").unwrap(), 90_000_000_000);
    assert_eq!(parse_duration("500ms").unwrap(), 500_000_000);
    assert_eq!(parse_duration("1.5s").unwrap(), 1_500_000_000);
    assert!(parse_duration("5").is_err());
    assert!(parse_duration("5 days").is_err());
}

#[test]
fn ports_short_and_long() {
    let p = |v: &str| parse_port(&serde_norway::from_str(v).unwrap()).unwrap();
    assert_eq!(p("80")[0].spec(), "80/tcp");
    assert_eq!(p("'8080:80'")[0].spec(), "8080:80/tcp");
    assert_eq!(
        p("'127.0.0.1:8080:80/udp'")[0].spec(),
        "127.0.0.1:8080:80/udp"
    );
    assert_eq!(p("'127.0.0.1::80'")[0].spec(), "127.0.0.1::80/tcp");
    assert_eq!(p("'9000-9001:90-91'").len(), 2);
    assert_eq!(p("{target: 80, published: 8080}")[0].spec(), "8080:80/tcp");
    assert!(parse_port(&serde_norway::from_str("'x:80'").unwrap()).is_err());
}

#[test]
fn env_files() {
    let vars = parse_env_file("# c\nA=1\nexport B=\"two words\"\n\nC='x'\nD=\n");
    assert_eq!(vars.get("A").unwrap(), "1");
    assert_eq!(vars.get("B").unwrap(), "two words");
    assert_eq!(vars.get("C").unwrap(), "x");
    assert_eq!(vars.get("D").unwrap(), "");
}

#[test]
fn mounts() {
    let env = Environment::new();
    let ctx = Context {
        project: "p",
        base_dir: Path::new("/srv/app"),
        env: &env,
        file: "f",
    };
    let m = |v: &str| parse_mount(&serde_norway::from_str(v).unwrap(), &ctx).unwrap();
    let bind = m("'./data:/data:ro'");
    assert_eq!(
        (bind.kind, bind.source.as_str(), bind.read_only),
        (MountKind::Bind, "/srv/app/data", true)
    );
    let vol = m("'cache:/cache'");
    assert_eq!(
        (vol.kind, vol.source.as_str()),
        (MountKind::Volume, "cache")
    );
    let anon = m("/scratch");
    assert_eq!((anon.kind, anon.source.as_str()), (MountKind::Volume, ""));
    let long = m("{type: bind, source: ../x, target: /x}");
    assert_eq!(long.source, "/srv/x");
}
