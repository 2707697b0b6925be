//! Names for containers created without `--name`, and name validation.

use rand::seq::SliceRandom;

const ADJECTIVES: &[&str] = &[
    "agile", "bold", "brave", "bright", "calm", "clever", "cool", "crisp", "eager", "fair", "fast",
    "gentle", "happy", "keen", "kind", "lucid", "merry", "nimble", "proud", "quick", "quiet",
    "sharp", "steady", "swift", "tidy", "vivid", "warm", "wise", "witty", "zesty",
];
const NOUNS: &[&str] = &[
    "babbage", "bohr", "curie", "darwin", "dijkstra", "einstein", "euler", "fermat", "gauss",
    "hopper", "kepler", "knuth", "lamport", "lovelace", "mccarthy", "newton", "noether", "pascal",
    "ritchie", "shannon", "thompson", "torvalds", "turing", "wozniak",
];

/// A random `adjective_scientist` name.
pub fn random_name() -> String {
    let mut rng = rand::thread_rng();
    let a = ADJECTIVES.choose(&mut rng).copied().unwrap_or("quick");
    let n = NOUNS.choose(&mut rng).copied().unwrap_or("turing");
    format!("{a}_{n}")
}

/// Docker's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if first_ok && rest_ok && name.len() >= 2 {
        Ok(())
    } else {
        Err(format!(
            "Invalid container name ({name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate("web-1").is_ok());
        assert!(validate("a").is_err());
        assert!(validate("-x").is_err());
        assert!(validate("a b").is_err());
        assert!(validate(&random_name()).is_ok());
    }
}
