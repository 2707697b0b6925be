//! `vmrun commit CONTAINER [REPOSITORY[:TAG]]`: `POST /commit`; prints the new
//! image's id, as docker does.

use super::fail;
use crate::api::{raw, Api};
use crate::error::{CliError, CliResult};

/// Arguments of `commit`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short = 'a', long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short = 'c', long = "change", value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// Commit message
    #[arg(short = 'm', long)]
    pub message: Option<String>,
    /// Pause container during commit (vmrun cannot pause containers: they are committed as they run)
    #[arg(short = 'p', long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    /// The container
    pub container: String,
    /// Name for the new image
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub reference: Option<String>,
}

/// `vmrun commit`.
pub async fn commit(api: &Api, args: &CommitArgs) -> CliResult<i32> {
    let mut query = vec![format!("container={}", raw::encode(&args.container))];
    if let Some(reference) = &args.reference {
        query.extend(super::import::name_query(reference)?);
    }
    for (key, value) in [("author", &args.author), ("comment", &args.message)] {
        if let Some(v) = value {
            query.push(format!("{key}={}", raw::encode(v)));
        }
    }
    for change in &args.change {
        query.push(format!("changes={}", raw::encode(change)));
    }
    query.push(format!("pause={}", args.pause));
    let path = format!("{}/commit?{}", api.version_prefix(), query.join("&"));
    let answer = raw::post_json(&api.socket, &path).await.map_err(fail)?;
    let id = answer["Id"]
        .as_str()
        .ok_or_else(|| CliError::new(1, format!("unexpected commit answer: {answer}")))?;
    println!("{id}");
    Ok(0)
}
