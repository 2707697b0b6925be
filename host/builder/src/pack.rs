//! The client side of a build context: the context directory as the tar that `POST
//! /build` takes, with what `.dockerignore` excludes left out (as the docker CLI does),
//! except the Dockerfile and `.dockerignore`, which the daemon reads.

use std::io::Write;
use std::path::Path;

use crate::context::walk;
use crate::dockerignore::DockerIgnore;
use crate::error::BuildFileError;

/// Writes the context `dir` as a tar to `out`. `keep` names context paths sent even
/// when excluded; `extra` adds one more file (a Dockerfile from outside the context,
/// under the name the request will give).
pub fn pack_context<W: Write>(
    dir: &Path,
    keep: &[&str],
    extra: Option<(&str, &[u8])>,
    out: W,
) -> Result<W, BuildFileError> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => DockerIgnore::parse(&text)?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => DockerIgnore::default(),
        Err(e) => return Err(BuildFileError::io(dir, "reading .dockerignore in", e)),
    };
    let mut paths = Vec::new();
    walk(dir, dir, &mut paths)?;
    let mut builder = tar::Builder::new(out);
    builder.follow_symlinks(false);
    let failed = |path: &Path| {
        let path = path.to_owned();
        move |e| BuildFileError::io(&path, "adding to the build context", e)
    };
    for rel in paths {
        let name = rel.to_string_lossy();
        if ignore.excludes(&name) && !keep.contains(&name.as_ref()) {
            continue;
        }
        let full = dir.join(&rel);
        builder
            .append_path_with_name(&full, &rel)
            .map_err(failed(&full))?;
    }
    if let Some((name, data)) = extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_entry_type(tar::EntryType::Regular);
        builder
            .append_data(&mut header, name, data)
            .map_err(failed(Path::new(name)))?;
    }
    builder.into_inner().map_err(failed(dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ignored_files_stay_home_but_the_dockerfile_goes() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("logs")).unwrap();
        std::fs::write(root.join("Dockerfile"), "FROM x\n").unwrap();
        std::fs::write(root.join(".dockerignore"), "Dockerfile\nlogs\n!logs/keep\n").unwrap();
        std::fs::write(root.join("logs/drop"), "d").unwrap();
        std::fs::write(root.join("logs/keep"), "k").unwrap();
        std::fs::write(root.join("app"), "a").unwrap();
        let data = pack_context(
            root,
            &["Dockerfile", ".dockerignore"],
            Some(("extra", b"e")),
            Vec::new(),
        )
        .unwrap();
        let mut names: Vec<String> = tar::Archive::new(&data[..])
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names,
            vec![".dockerignore", "Dockerfile", "app", "extra", "logs/keep"]
        );
    }
}
