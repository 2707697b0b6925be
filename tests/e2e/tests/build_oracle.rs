//! The same Dockerfiles built with `docker build` on vmrund and on Debian's dockerd
//! (the oracle): the images must have the same config (Env, Cmd, Entrypoint,
//! WorkingDir, User, ExposedPorts, Labels, Volumes, Healthcheck, StopSignal, OnBuild),
//! the same history (`CREATED BY`, copied files' checksums aside) and the same file
//! tree (paths, types, modes, owners, contents, link targets).

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use vmrun_e2e::{require_root, require_tool, run_with_timeout, CmdOutput, Daemon, ReferenceDaemon};

/// Lists the image's files with type, mode, owner and content hash, sorted. Left out:
/// what `docker run` itself adds to a container (the mounted `/etc` files, dockerd's
/// `/.dockerenv` and `/etc/mtab`, and `/data`, the mount point dockerd makes for the
/// image's VOLUME, which vmrund's `run` does not create).
const TREE: &str = r#"cd / && find . -xdev \( -path ./proc -o -path ./sys -o -path ./dev \) -prune -o -print | sort | while read -r f; do
case "$f" in ./etc/hostname|./etc/hosts|./etc/resolv.conf|./proc|./sys|./dev|.|./.dockerenv|./etc/mtab|./data) continue;; esac
line="$f $(stat -c '%a %u:%g %F' "$f")"
if [ -L "$f" ]; then line="$line -> $(readlink "$f")"; elif [ -f "$f" ]; then line="$line $(md5sum < "$f" | cut -c1-32)"; fi
echo "$line"; done"#;

const CONFIG_KEYS: [&str; 11] = [
    "Env",
    "Cmd",
    "Entrypoint",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "Healthcheck",
    "StopSignal",
    "OnBuild",
];

fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("vme-ctx-")
        .tempdir()
        .unwrap();
    for (path, text) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, text).unwrap();
    }
    dir
}

fn build(mut cmd: Command) -> CmdOutput {
    cmd.env("DOCKER_BUILDKIT", "0");
    run_with_timeout(cmd, None, Duration::from_secs(180))
}

fn args<'a>(extra: &[&'a str], tag: &'a str, ctx: &'a Path) -> Vec<&'a str> {
    let mut all = vec!["build", "--network", "none", "-t", tag];
    all.extend_from_slice(extra);
    all.push(ctx.to_str().unwrap());
    all
}

/// Unset and empty are the same thing for the comparison.
fn normal(v: &Value) -> Value {
    match v {
        Value::Array(a) if a.is_empty() => Value::Null,
        Value::Object(o) if o.is_empty() => Value::Null,
        Value::String(s) if s.is_empty() => Value::Null,
        other => other.clone(),
    }
}

fn config(out: &CmdOutput) -> Vec<(String, Value)> {
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    CONFIG_KEYS
        .iter()
        .map(|k| (k.to_string(), normal(&v[*k])))
        .collect()
}

/// History lines with the checksums of copied files (`file:<sha256>`, which dockerd
/// computes its own way) left out, and image ids only told apart from `<missing>`.
fn history(out: &CmdOutput) -> Vec<String> {
    out.stdout
        .lines()
        .map(|line| {
            let (id, created_by) = line.split_once('|').unwrap_or(("", line));
            let id = if id == "<missing>" { id } else { "<id>" };
            let mut text = format!("{id}|{created_by}");
            for kind in ["file:", "dir:", "multi:"] {
                if let Some(at) = text.find(kind) {
                    let start = at + kind.len();
                    let end = (start + 64).min(text.len());
                    if text[start..end].chars().all(|c| c.is_ascii_hexdigit()) {
                        text.replace_range(start..end, "<sum>");
                    }
                }
            }
            text
        })
        .collect()
}

/// The lines of a build's output that do not name ids: steps, cache hits, tags.
fn step_text(out: &CmdOutput) -> Vec<String> {
    out.stdout
        .lines()
        .filter(|l| {
            l.starts_with("Step ")
                || l.starts_with(" ---> Using cache")
                || l.starts_with("Successfully tagged")
        })
        .map(str::to_owned)
        .collect()
}

struct Pair {
    ours: Daemon,
    oracle: ReferenceDaemon,
}

impl Pair {
    /// Builds `ctx` on both with `extra` options and compares the images tagged `tag`.
    fn compare(&self, name: &str, ctx: &Path, extra: &[&str], tag: &str) {
        let a = args(extra, tag, ctx);
        let theirs = build(self.oracle.docker_cmd(&a));
        assert!(
            theirs.success(),
            "{name}: dockerd refused the case: {theirs}"
        );
        let ours = build(self.ours.docker_cmd(&a));
        assert!(
            ours.success(),
            "{name}: vmrund failed where dockerd built: {ours}"
        );

        // Built again, both hit their cache at the same steps and say so the same way.
        let again_theirs = build(self.oracle.docker_cmd(&a));
        let again_ours = build(self.ours.docker_cmd(&a));
        assert_eq!(
            step_text(&again_ours),
            step_text(&again_theirs),
            "{name}: the cached build's text differs:\n{again_ours}\n{again_theirs}"
        );
        assert!(
            again_ours.stdout.contains(" ---> Using cache"),
            "{name}: {again_ours}"
        );

        let h = [
            "history",
            "--no-trunc",
            "--format",
            "{{.ID}}|{{.CreatedBy}}",
            tag,
        ];
        let h_theirs = history(&self.oracle.docker(&h));
        assert_eq!(
            history(&self.ours.docker(&h)),
            h_theirs,
            "{name}: histories differ"
        );
        let inspect = ["image", "inspect", "-f", "{{json .Config}}", tag];
        let c_theirs = config(&self.oracle.docker(&inspect));
        let c_ours = config(&self.ours.docker(&inspect));
        assert_eq!(
            c_ours, c_theirs,
            "{name}: image configs differ (left vmrund, right dockerd)"
        );

        let run = [
            "run",
            "--rm",
            "--network",
            "none",
            "--entrypoint",
            "sh",
            tag,
            "-c",
            TREE,
        ];
        let t_theirs = self.oracle.docker(&run);
        assert!(t_theirs.success(), "{name}: {t_theirs}");
        let t_ours = self.ours.docker(&run);
        assert!(t_ours.success(), "{name}: {t_ours}");
        let (l_ours, l_theirs): (Vec<&str>, Vec<&str>) = (
            t_ours.stdout.lines().collect(),
            t_theirs.stdout.lines().collect(),
        );
        let only_ours: Vec<&&str> = l_ours.iter().filter(|l| !l_theirs.contains(l)).collect();
        let only_theirs: Vec<&&str> = l_theirs.iter().filter(|l| !l_ours.contains(l)).collect();
        assert!(
            only_ours.is_empty() && only_theirs.is_empty(),
            "{name}: file trees differ\nonly on vmrund: {only_ours:#?}\nonly on dockerd: {only_theirs:#?}"
        );
    }
}

impl Pair {
    /// Builds `ctx` once more on both: the same steps hit and miss the cache.
    fn same_cache_use(&self, name: &str, ctx: &Path, extra: &[&str], tag: &str) {
        let a = args(extra, tag, ctx);
        let theirs = build(self.oracle.docker_cmd(&a));
        let ours = build(self.ours.docker_cmd(&a));
        assert!(
            theirs.success() && ours.success(),
            "{name}: {ours}\n{theirs}"
        );
        assert_eq!(
            step_text(&ours),
            step_text(&theirs),
            "{name}: cache use differs:\n{ours}\n{theirs}"
        );
    }
}

fn pair() -> Option<Pair> {
    if !require_root() || !require_tool("docker") {
        return None;
    }
    let ours = Daemon::start();
    match ReferenceDaemon::start() {
        Ok(oracle) => Some(Pair { ours, oracle }),
        Err(reason) => {
            vmrun_test_skip::report(&reason);
            None
        }
    }
}

#[test]
fn images_match_dockerd() {
    let Some(p) = pair() else { return };

    // Metadata, WORKDIR creation, USER by name, COPY of files and directories with
    // --chown (dockerd 20.10 has no --chmod without BuildKit), ADD of a local tar (extracted), RUN in a WORKDIR as root.
    let basics = context(&[
        (
            "Dockerfile",
            r#"FROM busybox
ENV APP=/srv/app PATH=/srv/app/bin:$PATH
WORKDIR $APP/data
COPY files/ ./files/
COPY --chown=daemon:daemon secret.txt /etc/secret.txt
COPY single.txt /opt/renamed.txt
ADD bundle.tar /unpacked/
RUN mkdir -p /var/made && echo made > /var/made/file && chmod 700 /var/made && rm /bin/true
EXPOSE 8080 53/udp
LABEL org.example.name="the app" version=1.0
VOLUME ["/data"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --retries=2 CMD wget -q localhost:8080 || exit 1
USER daemon
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["echo hi"]
"#,
        ),
        ("files/a.txt", "A\n"),
        ("files/sub/b.txt", "B\n"),
        ("secret.txt", "s3cret\n"),
        ("single.txt", "one\n"),
        ("bundle/x.txt", "inside the tar\n"),
        ("bundle/d/y.txt", "deeper\n"),
    ]);
    let tar = Command::new("tar")
        .args([
            "-C",
            basics.path().join("bundle").to_str().unwrap(),
            "--owner=0",
            "--group=0",
            "-cf",
        ])
        .arg(basics.path().join("bundle.tar"))
        .args(["x.txt", "d"])
        .status()
        .unwrap();
    assert!(tar.success());
    p.compare("basics", basics.path(), &[], "e2e/basics");
    // A changed file misses the cache from its COPY on, on both.
    std::fs::write(basics.path().join("single.txt"), "changed\n").unwrap();
    p.same_cache_use("basics after a change", basics.path(), &[], "e2e/basics");

    // Multi-stage: ARG before FROM, per-stage ARG scoping, COPY --from, --target.
    let stages = context(&[(
        "Dockerfile",
        r#"ARG BASE=busybox
ARG WHO=world
FROM $BASE AS build
ARG WHO
ARG LOCAL=default
RUN mkdir /out && echo "hello $WHO $LOCAL" > /out/greeting && echo "${UNSET:-fallback}" > /out/fallback
FROM busybox AS final
ARG LOCAL
ENV SEEN="local=${LOCAL}"
COPY --from=build /out/ /in/
RUN cat /in/greeting
FROM final AS extra
RUN touch /extra
"#,
    )]);
    p.compare(
        "multi-stage",
        stages.path(),
        &["--target", "final", "--build-arg", "WHO=builder"],
        "e2e/stages",
    );

    // ONBUILD in a parent image runs in the child's build.
    let parent = context(&[(
        "Dockerfile",
        "FROM busybox\nONBUILD COPY trigger.txt /from-trigger.txt\nONBUILD RUN echo triggered > /triggered\n",
    )]);
    p.compare("onbuild parent", parent.path(), &[], "e2e/onbuild-parent");
    let child = context(&[
        (
            "Dockerfile",
            "FROM e2e/onbuild-parent\nRUN cat /triggered\n",
        ),
        ("trigger.txt", "copied by the trigger\n"),
    ]);
    p.compare("onbuild child", child.path(), &[], "e2e/onbuild-child");

    // .dockerignore with exceptions.
    let ignored = context(&[
        ("Dockerfile", "FROM busybox\nCOPY . /ctx/\n"),
        (
            ".dockerignore",
            "*.log\nsecret/\ndocs\n!docs/keep.md\nDockerfile\n.dockerignore\n",
        ),
        ("app.txt", "app\n"),
        ("debug.log", "noise\n"),
        ("secret/key", "k\n"),
        ("docs/keep.md", "keep\n"),
        ("docs/drop.md", "drop\n"),
    ]);
    p.compare(
        ".dockerignore, --label",
        ignored.path(),
        &["--label", "built.by=e2e test", "--label", "z=1"],
        "e2e/ignored",
    );

    // Globs, numeric --chown, a gzip tar, SHELL, RUN as a non-root USER in its WORKDIR.
    let more = context(&[
        (
            "Dockerfile",
            r#"FROM busybox
SHELL ["/bin/sh", "-ec"]
COPY *.txt /texts/
COPY --chown=1000:1000 conf/ /etc/app/
ADD pack.tar.gz /opt/
RUN mkdir -p /home/worker && chown daemon:daemon /home/worker
USER daemon
WORKDIR /home/worker
RUN echo "made by $(id -un)" > note && mkdir sub && ln -s note sub/link
USER root
ENTRYPOINT echo entry
"#,
        ),
        ("a.txt", "a\n"),
        ("b.txt", "b\n"),
        ("c.md", "not copied\n"),
        ("conf/app.conf", "key=value\n"),
        ("conf/nested/more.conf", "more\n"),
        ("packsrc/p.txt", "packed\n"),
    ]);
    let tar = Command::new("tar")
        .args([
            "-C",
            more.path().join("packsrc").to_str().unwrap(),
            "--owner=0",
            "--group=0",
            "-czf",
        ])
        .arg(more.path().join("pack.tar.gz"))
        .arg("p.txt")
        .status()
        .unwrap();
    assert!(tar.success());
    p.compare("globs, chown, gzip, user", more.path(), &[], "e2e/more");

    // Legacy forms, the escape directive, build args in RUN history, symlinks and
    // plain files through ADD, relative WORKDIRs, ranges, `USER uid:gid`.
    let forms = context(&[
        (
            "Dockerfile",
            "# escape=`\nFROM busybox\nARG VERSION=1.0\nARG UNUSED_DEFAULT=x\nENV legacy value with spaces\nLABEL legacy.key legacy value\nENV FROM_ARG=$VERSION `\n    SECOND=\"two words\"\nWORKDIR rel\nWORKDIR deeper/../again\nRUN echo \"v=$VERSION\" > version && pwd > where\nADD plain.txt link.txt ./\nCOPY dir/ /copied/\nEXPOSE 7000-7002/udp 9000\nUSER 1234:5678\nCMD echo shell form\n",
        ),
        ("plain.txt", "plain\n"),
        ("dir/inner.txt", "inner\n"),
    ]);
    std::os::unix::fs::symlink("plain.txt", forms.path().join("link.txt")).unwrap();
    std::os::unix::fs::symlink("inner.txt", forms.path().join("dir/alias")).unwrap();
    p.compare(
        "legacy forms and escapes",
        forms.path(),
        &["--build-arg", "VERSION=2.0"],
        "e2e/forms",
    );
}
