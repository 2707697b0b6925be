//! Image builds (`POST /build`, the classic builder's protocol): a Dockerfile's stages
//! executed step by step on the engine. Every step makes an image: RUN, COPY/ADD and
//! WORKDIR (when it creates the directory) a layer, the other instructions only a new
//! config; each step first asks the [`cache::BuildCache`]. The text written to the
//! [`Progress`] stream is docker's (`Step N/M : ...`, ` ---> Using cache`,
//! `Successfully built ...`).

mod cache;
mod cache_from;
mod config;
mod copy;
mod progress;
mod rootfs;
mod run;
mod steps;
mod workspace;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::{json, Map, Value};
use vmrun_builder::{ContextDir, Dockerfile, Vars};
use vmrun_images::CommitOptions;

use crate::engine::{Engine, EngineError};
pub use progress::Progress;
pub use workspace::{build_tmp, remove_leftovers, ContextError, ContextSpace};

/// Build arguments docker accepts without an ARG (and keeps out of history).
const PREDEFINED_ARGS: [&str; 8] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
];

/// What a build request asks for.
#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    /// Tags for the result.
    pub tags: Vec<String>,
    /// `--build-arg`s (a value of None: the name alone, unset).
    pub build_args: BTreeMap<String, Option<String>>,
    /// `--label`s, added to the final image.
    pub labels: BTreeMap<String, String>,
    /// `--target`: the last stage to build.
    pub target: Option<String>,
    /// `--no-cache`.
    pub no_cache: bool,
    /// `--pull`: fetch FROM images even when present.
    pub pull: bool,
    /// `--rm` (default on): remove RUN containers after a successful step.
    pub remove: bool,
    /// `--force-rm`: remove them after a failed one too.
    pub force_remove: bool,
    /// `--network` for RUN.
    pub network: Option<String>,
    /// `--isolation` for RUN (`process`, `vm`, ...; the daemon's default when None).
    pub isolation: Option<String>,
    /// `--cache-from` images: cache sources besides the local cache.
    pub cache_from: Vec<String>,
}

/// Why a build stopped: docker's CLI prints `message` and exits with `code` (1 if 0).
#[derive(Debug)]
pub struct BuildFailure {
    pub message: String,
    pub code: i64,
}

impl BuildFailure {
    fn new(message: impl Into<String>) -> Self {
        BuildFailure {
            message: message.into(),
            code: 1,
        }
    }
}

impl From<EngineError> for BuildFailure {
    fn from(e: EngineError) -> Self {
        BuildFailure::new(e.to_string())
    }
}

impl From<vmrun_images::ImageError> for BuildFailure {
    fn from(e: vmrun_images::ImageError) -> Self {
        BuildFailure::new(e.to_string())
    }
}

/// A stage being built.
struct StageState {
    /// The image so far (None: `scratch` before its first step).
    image: Option<String>,
    /// Its config in docker's keys.
    config: Map<String, Value>,
    /// ARGs declared in this stage with their values (None: declared, no value).
    args: BTreeMap<String, Option<String>>,
    /// Whether CMD was set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
    /// MAINTAINER.
    author: Option<String>,
}

impl StageState {
    /// Variables for substitution: ARG values, overridden by ENV.
    fn vars(&self) -> Vars {
        let mut vars: Vars = self
            .args
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect();
        vars.extend(config::env_vars(&self.config));
        vars
    }
}

/// One build in progress.
pub struct Build {
    engine: Arc<Engine>,
    context: ContextDir,
    file: Dockerfile,
    opts: BuildOptions,
    progress: Progress,
    cache: cache::BuildCache,
    cache_from: cache_from::CacheSources,
    tmp: PathBuf,
    step: usize,
    total: usize,
    /// Meta ARG values (before the first FROM).
    meta: BTreeMap<String, Option<String>>,
    /// Build args some ARG consumed.
    used_args: BTreeSet<String>,
    /// Built stages: name or index → image id.
    stages: HashMap<String, String>,
}

/// The short form of an image id (`sha256:` dropped, 12 digits).
pub fn short(id: &str) -> &str {
    let hex = id.strip_prefix("sha256:").unwrap_or(id);
    &hex[..hex.len().min(12)]
}

impl Build {
    /// Reads and parses the Dockerfile `dockerfile` of the unpacked `context` (after
    /// `.dockerignore`); errors here come before any output, as dockerd's do.
    pub fn prepare(
        engine: Arc<Engine>,
        context: ContextDir,
        dockerfile: &str,
        opts: BuildOptions,
        progress: Progress,
    ) -> Result<Build, String> {
        let text = context
            .read(dockerfile)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("Cannot locate specified Dockerfile: {dockerfile}"))?;
        let text = String::from_utf8_lossy(&text).into_owned();
        if text.trim().is_empty() {
            return Err(format!("the Dockerfile ({dockerfile}) cannot be empty"));
        }
        let mut file = Dockerfile::parse(&text).map_err(|e| match e {
            vmrun_builder::BuildFileError::Empty => {
                format!("the Dockerfile ({dockerfile}) cannot be empty")
            }
            other => other.to_string(),
        })?;
        let ignore = match context.read(".dockerignore").map_err(|e| e.to_string())? {
            Some(bytes) => vmrun_builder::DockerIgnore::parse(&String::from_utf8_lossy(&bytes))
                .map_err(|e| e.to_string())?,
            None => Default::default(),
        };
        // Read already: an excluded Dockerfile or .dockerignore is not copied either.
        context
            .apply_ignore(&ignore, &[])
            .map_err(|e| e.to_string())?;
        if let Some(target) = opts.target.as_deref().filter(|t| !t.is_empty()) {
            let target = target.to_ascii_lowercase();
            let at = file
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(target.as_str()))
                .ok_or_else(|| format!("failed to reach build target {target} in Dockerfile"))?;
            file.stages.truncate(at + 1);
        }
        if !opts.labels.is_empty() {
            steps::append_labels(&mut file, &opts.labels);
        }
        let total = file.step_count();
        let tmp = build_tmp(&engine.config.data_root);
        Ok(Build {
            cache: cache::BuildCache::open(&engine.config.data_root),
            cache_from: cache_from::CacheSources::default(),
            engine,
            context,
            file,
            opts,
            progress,
            tmp,
            step: 0,
            total,
            meta: BTreeMap::new(),
            used_args: BTreeSet::new(),
            stages: HashMap::new(),
        })
    }

    /// Runs every step; returns the final image id.
    pub async fn execute(mut self) -> Result<String, BuildFailure> {
        let mut sources = Vec::new();
        for name in &self.opts.cache_from {
            let raw = self
                .engine
                .images
                .resolve(name)
                .and_then(|i| Ok((i.id.clone(), self.engine.images.raw_config(&i.id)?)));
            match raw {
                Ok(source) => sources.push(source),
                Err(e) => self
                    .progress
                    .say(format!("[Warning] --cache-from {name}: not used ({e})\n")),
            }
        }
        self.cache_from = cache_from::CacheSources::new(sources);
        let meta_args = std::mem::take(&mut self.file.meta_args);
        for step in &meta_args {
            self.announce(&step.original);
            if let vmrun_builder::Instruction::Arg(args) = &step.instruction {
                let vars = self.meta_vars();
                for (name, default) in args {
                    let value = self.arg_value(name, default.as_deref(), &vars, None)?;
                    self.meta.insert(name.clone(), value);
                }
            }
        }
        let stages = std::mem::take(&mut self.file.stages);
        let mut last = None;
        for (index, stage) in stages.iter().enumerate() {
            let mut state = self.begin_stage(&stage.steps[0]).await?;
            for step in &stage.steps[1..] {
                if self.progress.is_closed() {
                    // Like dockerd: a client that hangs up cancels the build.
                    return Err(BuildFailure::new(
                        "the build was canceled: the client went away",
                    ));
                }
                self.announce(&step.original);
                self.dispatch(&mut state, step).await?;
            }
            let id = match state.image.clone() {
                Some(id) => id,
                None => {
                    self.commit(&state, None, false, "/bin/sh -c #(nop) ".into())
                        .await?
                }
            };
            if let Some(name) = &stage.name {
                self.stages.insert(name.clone(), id.clone());
            }
            self.stages.insert(index.to_string(), id.clone());
            last = Some(id);
        }
        let id = last.ok_or_else(|| {
            BuildFailure::new("No image was generated. Is your Dockerfile empty?")
        })?;
        let unused: Vec<&String> = self
            .opts
            .build_args
            .keys()
            .filter(|k| !self.used_args.contains(*k) && !PREDEFINED_ARGS.contains(&k.as_str()))
            .collect();
        if !unused.is_empty() {
            let names: Vec<&str> = unused.iter().map(|s| s.as_str()).collect();
            self.progress.say(format!(
                "[Warning] One or more build-args [{}] were not consumed\n",
                names.join(" ")
            ));
        }
        self.progress.aux_id(&id);
        self.progress
            .say(format!("Successfully built {}\n", short(&id)));
        for tag in &self.opts.tags {
            // An unchanged tag is not written again (a fully cached build writes nothing).
            let current = self.engine.images.resolve(tag).ok().map(|i| i.id);
            if current.as_deref() != Some(id.as_str()) {
                self.engine.images.tag(&id, tag)?;
            }
            let shown = vmrun_images::normalize_reference(tag).unwrap_or_else(|_| tag.clone());
            self.engine
                .events
                .emit("image", "tag", &id, &[("name", shown.clone())]);
            self.progress.say(format!("Successfully tagged {shown}\n"));
        }
        Ok(id)
    }

    fn announce(&mut self, original: &str) {
        self.step += 1;
        self.progress.say(format!(
            "Step {}/{} : {}\n",
            self.step, self.total, original
        ));
    }

    /// Variables FROM lines see: the meta ARGs with values.
    fn meta_vars(&self) -> Vars {
        self.meta
            .iter()
            .filter_map(|(k, v)| v.clone().map(|v| (k.clone(), v)))
            .collect()
    }

    /// An ARG's value: the build arg, else the default expanded, else (inside a stage)
    /// the meta ARG's value.
    fn arg_value(
        &mut self,
        name: &str,
        default: Option<&str>,
        vars: &Vars,
        meta: Option<&BTreeMap<String, Option<String>>>,
    ) -> Result<Option<String>, BuildFailure> {
        if let Some(given) = self.opts.build_args.get(name) {
            self.used_args.insert(name.to_owned());
            if given.is_some() {
                return Ok(given.clone());
            }
        }
        if let Some(default) = default {
            return vmrun_builder::expand_word(default, vars, self.file.escape)
                .map(Some)
                .map_err(|e| BuildFailure::new(e.to_string()));
        }
        Ok(meta.and_then(|m| m.get(name).cloned().flatten()))
    }

    /// Commits the stage's config, with `layer` when the step changed files
    /// (`take_layer`: the store may move that directory in as the unpacked layer).
    async fn commit(
        &self,
        state: &StageState,
        layer: Option<PathBuf>,
        take_layer: bool,
        created_by: String,
    ) -> Result<String, BuildFailure> {
        let images = self.engine.images.clone();
        let parent = state.image.clone();
        let opts = CommitOptions {
            reference: None,
            message: None,
            author: state.author.clone(),
            changes: Vec::new(),
            config: state.config.clone(),
            created_by,
            take_layer_dir: take_layer,
        };
        let committed = tokio::task::spawn_blocking(move || {
            images.commit_step(parent.as_deref(), layer.as_deref(), &opts)
        })
        .await
        .map_err(|e| BuildFailure::new(format!("commit task failed: {e}")))??;
        Ok(committed.id)
    }

    /// A step's cached image, unless `--no-cache` or the image is gone.
    fn cached(&self, key: &str) -> Option<String> {
        if self.opts.no_cache {
            return None;
        }
        let id = self.cache.get(key)?;
        self.engine.images.resolve(&id).ok().map(|i| i.id)
    }

    /// Ends a step with its image: ` ---> <id>`, and the state moves on to it.
    fn finish_step(&self, state: &mut StageState, key: &str, id: String) {
        self.cache.put(key, &id);
        self.progress.say(format!(" ---> {}\n", short(&id)));
        state.image = Some(id);
    }

    /// A metadata-only step (or one whose image the cache has): commit the config.
    async fn config_step(&self, state: &mut StageState, comment: &str) -> Result<(), BuildFailure> {
        let created_by = format!(
            "{} #(nop)  {comment}",
            config::shell(&state.config).join(" ")
        );
        let key = cache::BuildCache::key(state.image.as_deref(), &created_by);
        if self.use_cache(state, &key, &created_by).await? {
            return Ok(());
        }
        let id = self.commit(state, None, false, created_by).await?;
        self.finish_step(state, &key, id);
        Ok(())
    }

    /// On a cache hit (the local cache, else a `--cache-from` image that made step
    /// `created_by`), prints it and moves the stage to the cached image.
    async fn use_cache(
        &self,
        state: &mut StageState,
        key: &str,
        created_by: &str,
    ) -> Result<bool, BuildFailure> {
        let id = match self.cached(key) {
            Some(id) => id,
            None => match self.step_from_cache_sources(state, created_by).await? {
                Some(id) => {
                    self.cache.put(key, &id);
                    id
                }
                None => return Ok(false),
            },
        };
        self.progress.say(" ---> Using cache\n");
        self.progress.say(format!(" ---> {}\n", short(&id)));
        if let Ok(raw) = self.engine.images.raw_config(&id) {
            if let Some(c) = raw.get("config").and_then(Value::as_object) {
                state.config = c.clone();
            }
        }
        state.image = Some(id);
        Ok(true)
    }

    /// The image of step `created_by` from a `--cache-from` source: the source itself,
    /// or the stage's image plus what the source's step added.
    async fn step_from_cache_sources(
        &self,
        state: &StageState,
        created_by: &str,
    ) -> Result<Option<String>, BuildFailure> {
        if self.opts.no_cache || self.cache_from.is_empty() {
            return Ok(None);
        }
        let parent = match state.image.as_deref() {
            Some(id) => Some(self.engine.images.raw_config(id)?),
            None => None,
        };
        let Some(hit) = self.cache_from.find(parent.as_ref(), created_by) else {
            return Ok(None);
        };
        if hit.last {
            return Ok(Some(hit.source));
        }
        let images = self.engine.images.clone();
        let parent = state.image.clone();
        let opts = CommitOptions {
            config: state.config.clone(),
            ..CommitOptions::default()
        };
        let made = tokio::task::spawn_blocking(move || {
            let layer = vmrun_images::StepLayer::Reused {
                source: &hit.source,
                history_index: hit.history_index,
            };
            images.commit_layer(parent.as_deref(), layer, &opts)
        })
        .await
        .map_err(|e| BuildFailure::new(format!("commit task failed: {e}")))??;
        Ok(Some(made.id))
    }

    /// The default stage config: the base image's, with PATH added when missing.
    fn base_config(raw: Option<&Value>) -> Map<String, Value> {
        let mut config = raw
            .and_then(|r| r.get("config"))
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        if !config::strings(&config, "Env")
            .iter()
            .any(|e| e.starts_with("PATH="))
        {
            config::set_env(
                &mut config,
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        }
        if config.get("Env").is_none() {
            config.insert("Env".into(), json!([]));
        }
        config
    }
}
