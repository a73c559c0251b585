//! Which tensors to load: include and exclude patterns over tensor names.
//!
//! A pattern is a glob (`blk.*.attn_*`, `model.layers.1[0-9].*`) unless it starts with
//! `re:`, in which case the rest is a regular expression searched anywhere in the name
//! (anchor it with `^…$` to match whole names). With no include patterns every tensor
//! is included; an exclude pattern always wins.

use globset::{Glob, GlobMatcher};
use regex::Regex;

use crate::error::{Error, Result};

#[derive(Debug, Clone)]
enum Matcher {
    Glob(GlobMatcher),
    Regex(Regex),
}

impl Matcher {
    fn parse(pattern: &str) -> Result<Matcher> {
        let invalid = |reason: String| Error::InvalidPattern {
            pattern: pattern.to_string(),
            reason,
        };
        match pattern.strip_prefix("re:") {
            Some(re) => Regex::new(re).map(Matcher::Regex).map_err(|e| invalid(e.to_string())),
            None => Glob::new(pattern)
                .map(|g| Matcher::Glob(g.compile_matcher()))
                .map_err(|e| invalid(e.to_string())),
        }
    }

    fn is_match(&self, name: &str) -> bool {
        match self {
            Matcher::Glob(g) => g.is_match(name),
            Matcher::Regex(r) => r.is_match(name),
        }
    }
}

/// Include/exclude patterns over tensor names.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    include: Vec<(String, Matcher)>,
    exclude: Vec<(String, Matcher)>,
}

impl Filter {
    /// A filter that keeps everything.
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Adds an include pattern.
    pub fn include(mut self, pattern: &str) -> Result<Filter> {
        self.include.push((pattern.to_string(), Matcher::parse(pattern)?));
        Ok(self)
    }

    /// Adds an exclude pattern.
    pub fn exclude(mut self, pattern: &str) -> Result<Filter> {
        self.exclude.push((pattern.to_string(), Matcher::parse(pattern)?));
        Ok(self)
    }

    /// Whether `name` passes the filter.
    pub fn matches(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|(_, m)| m.is_match(name)))
            && !self.exclude.iter().any(|(_, m)| m.is_match(name))
    }

    /// Whether the filter keeps everything.
    pub fn is_all(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty()
    }

    /// The include patterns that matched none of `names` (likely typos, worth a warning).
    pub fn unused_includes<'a>(&'a self, names: &[&str]) -> Vec<&'a str> {
        self.include
            .iter()
            .filter(|(_, m)| !names.iter().any(|n| m.is_match(n)))
            .map(|(p, _)| p.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_regexes_and_precedence() {
        let f = Filter::all()
            .include("blk.*.attn_*")
            .unwrap()
            .exclude("re:\\.attn_v\\.")
            .unwrap();
        assert!(f.matches("blk.0.attn_q.weight"));
        assert!(f.matches("blk.12.attn_output.weight"));
        assert!(!f.matches("blk.0.attn_v.weight"));
        assert!(!f.matches("blk.0.ffn_up.weight"));
        assert!(Filter::all().matches("anything"));
        let r = Filter::all().include("re:^model\\.layers\\.(0|1)\\.").unwrap();
        assert!(r.matches("model.layers.1.mlp.up_proj.weight"));
        assert!(!r.matches("model.layers.10.mlp.up_proj.weight"));
        assert_eq!(
            r.unused_includes(&["lm_head.weight"]),
            vec!["re:^model\\.layers\\.(0|1)\\."]
        );
    }

    #[test]
    fn bad_patterns_say_what_is_wrong() {
        let e = Filter::all().include("re:(unclosed").unwrap_err();
        assert!(matches!(&e, Error::InvalidPattern { pattern, .. } if pattern == "re:(unclosed"));
        assert!(Filter::all().exclude("blk.[0-").is_err());
    }
}
