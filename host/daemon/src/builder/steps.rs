//! The steps of a stage: FROM (with the base image's ONBUILD triggers), ARG, RUN,
//! COPY/ADD, WORKDIR, MAINTAINER, and the metadata-only instructions of [`config`].

use std::collections::BTreeMap;

use vmrun_builder::{expand_word, ContextDir, CopyArgs, Dockerfile, Instruction, Step};
use vmrun_images::PullOptions;

use super::cache::BuildCache;
use super::copy::{copy_into, resolve_owner, CopyJob};
use super::rootfs::Rootfs;
use super::run::{run, RunSpec};
use super::{config, short, Build, BuildFailure, StageState, PREDEFINED_ARGS};

/// Adds `--label`s as dockerd does: one more LABEL step per label at the end.
pub fn append_labels(file: &mut Dockerfile, labels: &BTreeMap<String, String>) {
    let quote = |s: &str| {
        let escaped = s
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
            .replace('$', "\\$");
        format!("\"{escaped}\"")
    };
    if let Some(stage) = file.stages.last_mut() {
        let line = stage.steps.last().map(|s| s.line + 1).unwrap_or(1);
        for (k, v) in labels {
            stage.steps.push(Step {
                line,
                // dockerd shows the label as given; the values are taken literally.
                original: format!("LABEL {k}={v}"),
                instruction: Instruction::Label(vec![(quote(k), quote(v))]),
            });
        }
    }
}

fn failure(e: impl ToString) -> BuildFailure {
    BuildFailure::new(e.to_string())
}

impl Build {
    /// The image a FROM or `--from` names: a stage built before, or an image (pulled
    /// when missing or with `--pull`).
    async fn image_for(&self, name: &str, allow_pull: bool) -> Result<String, BuildFailure> {
        if let Some(id) = self.stages.get(&name.to_ascii_lowercase()) {
            return Ok(id.clone());
        }
        let present = self.engine.images.resolve(name).ok();
        if present.is_some() && !(allow_pull && self.opts.pull) {
            return Ok(present.map(|i| i.id).unwrap_or_default());
        }
        let images = self.engine.images.clone();
        let opts = PullOptions {
            platform: None,
            auth_config_path: None,
            credentials: None,
            hosts: self.engine.config.registry_hosts.clone(),
        };
        let reference = name.to_owned();
        let pulled = tokio::task::spawn_blocking(move || images.pull(&reference, &opts, &|_| {}))
            .await
            .map_err(failure)?;
        match pulled {
            Ok(_) => Ok(self.engine.images.resolve(name)?.id),
            Err(e) => match present {
                // Unlike dockerd, a failed `--pull` of an image that is here is not fatal
                // (hosts without a registry still build), but it is said.
                Some(image) if self.opts.pull => {
                    self.progress.say(format!(
                        "[Warning] --pull of {name} failed, building on the local image: {e}\n"
                    ));
                    Ok(image.id)
                }
                _ => Err(failure(e)),
            },
        }
    }

    /// FROM: the stage starts from an image, `scratch` or an earlier stage.
    pub(super) async fn begin_stage(&mut self, from: &Step) -> Result<StageState, BuildFailure> {
        self.announce(&from.original);
        let Instruction::From { image, .. } = &from.instruction else {
            return Err(failure("a stage must begin with FROM"));
        };
        let name = expand_word(image, &self.meta_vars(), self.file.escape).map_err(failure)?;
        let base = if name.eq_ignore_ascii_case("scratch") {
            None
        } else {
            Some(self.image_for(&name, true).await?)
        };
        let raw = match &base {
            Some(id) => Some(self.engine.images.raw_config(id)?),
            None => None,
        };
        self.progress.say(format!(
            " ---> {}\n",
            base.as_deref().map(short).unwrap_or("")
        ));
        let mut state = StageState {
            image: base,
            config: Build::base_config(raw.as_ref()),
            args: BTreeMap::new(),
            cmd_set: false,
            author: None,
        };
        let triggers = config::strings(&state.config, "OnBuild");
        if !triggers.is_empty() {
            state.config.remove("OnBuild");
            let plural = if triggers.len() == 1 { "" } else { "s" };
            self.progress.say(format!(
                "# Executing {} build trigger{plural}\n",
                triggers.len()
            ));
            for trigger in triggers {
                let parsed = Dockerfile::parse(&format!("FROM scratch\n{trigger}"))
                    .map_err(|e| failure(format!("ONBUILD trigger {trigger:?}: {e}")))?;
                for step in parsed.stages.iter().flat_map(|s| s.steps.iter().skip(1)) {
                    self.dispatch(&mut state, step).await?;
                }
            }
        }
        Ok(state)
    }

    /// One instruction of a stage.
    pub(super) async fn dispatch(
        &mut self,
        state: &mut StageState,
        step: &Step,
    ) -> Result<(), BuildFailure> {
        let escape = self.file.escape;
        match &step.instruction {
            Instruction::From { .. } => Err(failure("unexpected FROM inside a stage")),
            Instruction::Arg(args) => {
                let mut shown = Vec::new();
                for (name, default) in args {
                    let vars = state.vars();
                    let meta = self.meta.clone();
                    let value = self.arg_value(name, default.as_deref(), &vars, Some(&meta))?;
                    shown.push(match &default {
                        Some(d) => format!("{name}={d}"),
                        None => name.clone(),
                    });
                    state.args.insert(name.clone(), value);
                }
                self.config_step(state, &format!("ARG {}", shown.join(" ")))
                    .await
            }
            Instruction::Run { command, network } => {
                let argv = config::argv(&state.config, command);
                self.run_step(state, argv, network.clone()).await
            }
            Instruction::Copy(args) => self.copy_step(state, args, false).await,
            Instruction::Add(args) => self.copy_step(state, args, true).await,
            Instruction::Workdir(raw) => {
                let dir = expand_word(raw, &state.vars(), escape).map_err(failure)?;
                let current = state
                    .config
                    .get("WorkingDir")
                    .and_then(|v| v.as_str())
                    .filter(|d| !d.is_empty())
                    .unwrap_or("/")
                    .to_owned();
                let joined = if dir.starts_with('/') {
                    dir
                } else {
                    format!("{current}/{dir}")
                };
                let dir = vmrun_builder::dockerignore::clean(&joined);
                state.config.insert("WorkingDir".into(), dir.clone().into());
                self.workdir_step(state, &dir).await
            }
            Instruction::Maintainer(who) => {
                state.author = Some(who.clone());
                self.config_step(state, &format!("MAINTAINER {who}")).await
            }
            other => {
                let vars = state.vars();
                let comment =
                    config::apply(&mut state.config, other, &vars, escape, &mut state.cmd_set)
                        .map_err(failure)?
                        .unwrap_or_default();
                self.config_step(state, &comment).await
            }
        }
    }

    /// Build args in force for RUN: `(name, value)`, sorted.
    fn run_args(&self, state: &StageState) -> Vec<(String, String)> {
        let env = config::env_vars(&state.config);
        let mut args: BTreeMap<String, String> = state
            .args
            .iter()
            .filter(|(k, _)| !env.contains_key(*k))
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        for name in PREDEFINED_ARGS {
            if let Some(Some(v)) = self.opts.build_args.get(name) {
                args.entry(name.to_owned()).or_insert_with(|| v.clone());
            }
        }
        args.into_iter().collect()
    }

    async fn run_step(
        &mut self,
        state: &mut StageState,
        argv: Vec<String>,
        network: Option<String>,
    ) -> Result<(), BuildFailure> {
        let args = self.run_args(state);
        let in_history: Vec<String> = args
            .iter()
            .filter(|(k, _)| !PREDEFINED_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let created_by = if in_history.is_empty() {
            argv.join(" ")
        } else {
            format!(
                "|{} {} {}",
                in_history.len(),
                in_history.join(" "),
                argv.join(" ")
            )
        };
        let key = BuildCache::key(state.image.as_deref(), &format!("RUN {created_by}"));
        if self.use_cache(state, &key, &created_by).await? {
            return Ok(());
        }
        let image = state
            .image
            .clone()
            .ok_or_else(|| failure("RUN needs a file system: FROM scratch has nothing to run"))?;
        let spec = RunSpec {
            image,
            argv: argv.clone(),
            env: args.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            user: config::strings_value(&state.config, "User"),
            workdir: config::strings_value(&state.config, "WorkingDir"),
            network: network.or_else(|| self.opts.network.clone()),
            isolation: self.opts.isolation.clone(),
        };
        let ran = run(&self.engine, spec, &self.progress).await?;
        let remove = |this: &Build, id: String| {
            let engine = this.engine.clone();
            async move {
                let _ = engine.remove_container(&id, true).await;
            }
        };
        if ran.exit_code != 0 {
            if self.opts.remove || self.opts.force_remove {
                remove(self, ran.id.clone()).await;
            }
            return Err(BuildFailure {
                message: format!(
                    "The command '{}' returned a non-zero code: {}",
                    argv.join(" "),
                    ran.exit_code
                ),
                code: i64::from(ran.exit_code),
            });
        }
        let Some(upper) = ran.upper.as_ref().map(|u| u.path.clone()) else {
            remove(self, ran.id.clone()).await;
            return Err(failure(format!(
                "RUN ran with isolation {}, which has no writable layer this daemon can commit",
                ran.isolation
            )));
        };
        let committed = self.commit(state, Some(upper), false, created_by).await;
        if self.opts.remove {
            self.progress.say(format!(
                "Removing intermediate container {}\n",
                &ran.id[..12]
            ));
            remove(self, ran.id.clone()).await;
        }
        let id = committed?;
        self.finish_step(state, &key, id);
        Ok(())
    }

    /// An image mounted for a step: read-only with a staging directory for the step's
    /// files, or (`writable`) under an overlay upper directory.
    fn mount(&self, image: Option<&str>, writable: bool) -> Result<Rootfs, BuildFailure> {
        let layers = match image {
            Some(id) => self.engine.images.resolve(id)?.layer_dirs,
            None => Vec::new(),
        };
        Ok(if writable {
            Rootfs::writable(&self.tmp, &layers)?
        } else {
            Rootfs::staged(&self.tmp, &layers)?
        })
    }

    async fn workdir_step(
        &mut self,
        state: &mut StageState,
        dir: &str,
    ) -> Result<(), BuildFailure> {
        let created_by = format!(
            "{} #(nop) WORKDIR {dir}",
            config::shell(&state.config).join(" ")
        );
        let key = BuildCache::key(state.image.as_deref(), &created_by);
        if self.use_cache(state, &key, &created_by).await? {
            return Ok(());
        }
        let mut rootfs = self.mount(state.image.as_deref(), false)?;
        if rootfs.resolve(dir, true).is_dir() {
            drop(rootfs);
            let id = self.commit(state, None, false, created_by).await?;
            self.finish_step(state, &key, id);
            return Ok(());
        }
        super::copy::make_dirs(rootfs.path(), rootfs.out(), dir, (0, 0)).map_err(failure)?;
        let upper = rootfs.finish()?;
        let id = self.commit(state, Some(upper), true, created_by).await?;
        drop(rootfs);
        self.finish_step(state, &key, id);
        Ok(())
    }

    async fn copy_step(
        &mut self,
        state: &mut StageState,
        args: &CopyArgs,
        add: bool,
    ) -> Result<(), BuildFailure> {
        let escape = self.file.escape;
        let vars = state.vars();
        let word = |w: &str| expand_word(w, &vars, escape).map_err(failure);
        let verb = if add { "ADD" } else { "COPY" };
        let mut sources = Vec::new();
        for s in &args.sources {
            let s = word(s)?;
            if add && (s.starts_with("http://") || s.starts_with("https://")) {
                return Err(failure(format!(
                    "ADD {s}: fetching remote URLs is not supported by this daemon (it has no network to reach them): download the file into the build context and ADD it from there"
                )));
            }
            sources.push(s);
        }
        let mut dest = word(&args.dest)?;
        let dest_as_written = dest.clone();
        if !dest.starts_with('/') {
            let workdir = config::strings_value(&state.config, "WorkingDir").unwrap_or_default();
            dest = format!("{}/{dest}", workdir.trim_end_matches('/'));
        }
        // Where the sources come from: the context, or another stage's or image's files.
        let (source_root, from_id, _source_mount) = match &args.from {
            Some(from) => {
                let from = word(from)?;
                let id = self.image_for(&from, false).await?;
                let mount = self.mount(Some(&id), false)?;
                (
                    ContextDir::open_image_root(mount.path()),
                    Some(id),
                    Some(mount),
                )
            }
            None => (self.context.clone(), None, None),
        };
        // Here-documents (`COPY <<EOF /dest`) become files of their own directory.
        let docs = tempfile::Builder::new()
            .prefix("heredocs-")
            .tempdir_in(&self.tmp)
            .map_err(|e| failure(format!("creating a directory for here-documents: {e}")))?;
        for doc in &args.heredocs {
            let content = if doc.expand {
                vmrun_builder::shell::expand_variables(&doc.content, &vars, escape)
                    .map_err(failure)?
            } else {
                doc.content.clone()
            };
            std::fs::write(docs.path().join(&doc.name), content)
                .map_err(|e| failure(format!("writing here-document {}: {e}", doc.name)))?;
        }
        let docs_root = ContextDir::open(docs.path());
        // Resolving and hashing read every source file: off the async workers.
        let (paths, checksum) = tokio::task::spawn_blocking(move || {
            let mut paths = Vec::new();
            let (mut from_root, mut from_docs) = (Vec::new(), Vec::new());
            for s in &sources {
                match vmrun_builder::heredoc::marker_name(s) {
                    Some(name) => {
                        let found = docs_root.resolve_named(&name)?;
                        from_docs.extend(found.iter().map(|(p, _)| p.clone()));
                        paths.extend(found);
                    }
                    None => {
                        let found = source_root.resolve_named(s)?;
                        from_root.extend(found.iter().map(|(p, _)| p.clone()));
                        paths.extend(found);
                    }
                }
            }
            let mut checksum = source_root.checksum(&from_root)?;
            if !from_docs.is_empty() {
                let docs_sum = docs_root.checksum(&from_docs)?;
                checksum = BuildCache::key(Some(&checksum), &docs_sum);
            }
            Ok::<_, vmrun_builder::BuildFileError>((paths, checksum))
        })
        .await
        .map_err(failure)?
        .map_err(failure)?;
        let kind = if paths.len() > 1 {
            "multi"
        } else if paths.first().is_some_and(|(p, _)| p.is_dir()) {
            "dir"
        } else {
            "file"
        };
        // As dockerd writes it, `--chown` glued to the source kind.
        let chown_text = args
            .chown
            .as_deref()
            .map(|c| format!("--chown={c}"))
            .unwrap_or_default();
        let created_by = format!(
            "{} #(nop) {verb} {chown_text}{kind}:{checksum} in {dest_as_written} ",
            config::shell(&state.config).join(" ")
        );
        let key_text = format!(
            "{created_by}\nfrom={}\nchown={}\nchmod={}",
            from_id.as_deref().unwrap_or(""),
            args.chown.as_deref().unwrap_or(""),
            args.chmod.as_deref().unwrap_or("")
        );
        let key = BuildCache::key(state.image.as_deref(), &key_text);
        if self.use_cache(state, &key, &created_by).await? {
            return Ok(());
        }
        let chmod = match args.chmod.as_deref() {
            Some(m) => Some(u32::from_str_radix(m, 8).map_err(|_| {
                failure(format!(
                    "invalid --chmod value {m:?}: it must be an octal mode"
                ))
            })?),
            None => None,
        };
        // ADD extracts archives through the image's own symlinks: write through a
        // writable overlay there; everything else goes to a staging directory.
        let mut rootfs = self.mount(state.image.as_deref(), add)?;
        let owner = match args.chown.as_deref() {
            Some(spec) => resolve_owner(rootfs.path(), &word(spec)?).map_err(failure)?,
            None => (0, 0),
        };
        let job = CopyJob {
            sources: paths,
            dest,
            owner,
            chmod,
            extract: add,
        };
        let (view, out) = (rootfs.path().to_owned(), rootfs.out().to_owned());
        tokio::task::spawn_blocking(move || copy_into(&view, &out, &job))
            .await
            .map_err(failure)?
            .map_err(|e| failure(format!("{verb} failed: {e}")))?;
        let upper = rootfs.finish()?;
        let id = self.commit(state, Some(upper), true, created_by).await?;
        drop(rootfs);
        self.finish_step(state, &key, id);
        Ok(())
    }
}
