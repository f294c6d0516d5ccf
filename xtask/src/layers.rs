//! Guard: filter-user's modules form layers, and a module may use only its own layer and the
//! layers below it (ARCHITECTURE.md says what each holds). `cargo xtask lint` fails on the first
//! upward use, naming the file, the path and both layers.

use std::{
    fmt,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, Result};
use proc_macro2::{TokenStream, TokenTree};
use syn::visit::Visit;

/// filter-user's top-level modules, lowest layer first.
pub const LAYERS: [&str; 9] = [
    "sys", "model", "data", "compile", "state", "kernel", "ops", "agent", "cli",
];

/// Files of the crate root that belong to no layer and may use every layer.
const ROOT_FILES: [&str; 3] = ["lib.rs", "main.rs", "fuzz_targets.rs"];

/// One use of a module from a layer above the user's.
#[derive(Debug, PartialEq, Eq)]
pub struct Upward {
    pub file: PathBuf,
    pub line: usize,
    pub path: String,
    pub from: &'static str,
    pub to: &'static str,
}

impl fmt::Display for Upward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: `{}` reaches up from layer `{}` to layer `{}`",
            self.file.display(),
            self.line,
            self.path,
            self.from,
            self.to
        )
    }
}

/// Every upward use in the crate whose sources are under `src`.
pub fn upward_uses(src: &Path) -> Result<Vec<Upward>> {
    let mut found = Vec::new();
    for file in rust_files(src)? {
        let relative = file.strip_prefix(src).expect("walked from src");
        let module = module_path(relative);
        let Some(first) = module.first() else {
            continue;
        };
        if module.len() == 1 && ROOT_FILES.contains(&format!("{first}.rs").as_str()) {
            continue;
        }
        let layer = layer_of(first).with_context(|| {
            format!(
                "{} is in no layer: add its top-level module to xtask's layers::LAYERS",
                file.display()
            )
        })?;
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("cannot read {}", file.display()))?;
        found.extend(upward_in(&text, &module, layer)?.into_iter().map(|mut u| {
            u.file = relative.to_path_buf();
            u
        }));
    }
    Ok(found)
}

/// The upward uses in one file's `text`, the file being module `module` of layer `layer`.
pub fn upward_in(text: &str, module: &[String], layer: &'static str) -> Result<Vec<Upward>> {
    let file = syn::parse_file(text).context("not valid Rust")?;
    let mut visitor = Uses {
        module: module.to_vec(),
        layer,
        found: Vec::new(),
    };
    visitor.visit_file(&file);
    Ok(visitor.found)
}

fn layer_of(module: &str) -> Option<&'static str> {
    LAYERS.iter().copied().find(|l| *l == module)
}

fn rank(layer: &str) -> usize {
    LAYERS
        .iter()
        .position(|l| *l == layer)
        .unwrap_or(usize::MAX)
}

/// `ops/attach.rs` → `[ops, attach]`; `ops/mod.rs` → `[ops]`; `lib.rs` → `[lib]`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if let Some(last) = parts.pop() {
        if last != "mod.rs" {
            parts.push(last.trim_end_matches(".rs").to_owned());
        }
    }
    parts
}

fn rust_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in
            std::fs::read_dir(&dir).with_context(|| format!("cannot list {}", dir.display()))?
        {
            let path = entry?.path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

struct Uses {
    /// The module being walked (grows inside inline `mod`s, for `super::`).
    module: Vec<String>,
    layer: &'static str,
    found: Vec<Upward>,
}

impl Uses {
    /// Judges a path given as its leading segments (`crate`, `super`, names...).
    fn judge(&mut self, segments: &[String], line: usize) {
        let Some(target) = self.top_module(segments) else {
            return;
        };
        let Some(to) = layer_of(&target) else {
            return;
        };
        if rank(to) > rank(self.layer) {
            self.found.push(Upward {
                file: PathBuf::new(),
                line,
                path: segments.join("::"),
                from: self.layer,
                to,
            });
        }
    }

    /// The crate's top-level module a path starting with `crate` or `super` lands in.
    fn top_module(&self, segments: &[String]) -> Option<String> {
        let mut rest = segments.iter();
        let mut at = match rest.next()?.as_str() {
            "crate" => Vec::new(),
            "super" => {
                let mut at = self.module.clone();
                at.pop()?;
                at
            }
            _ => return None,
        };
        for segment in rest {
            if segment == "super" {
                at.pop()?;
            } else {
                at.push(segment.clone());
                break;
            }
        }
        at.into_iter().next()
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.use_tree(prefix, &path.tree);
                prefix.pop();
            }
            syn::UseTree::Name(name) => self.use_leaf(prefix, &name.ident),
            syn::UseTree::Rename(rename) => self.use_leaf(prefix, &rename.ident),
            syn::UseTree::Glob(glob) => {
                let path = prefix.clone();
                self.judge(&path, glob.star_token.spans[0].start().line);
            }
            syn::UseTree::Group(group) => {
                for item in &group.items {
                    self.use_tree(prefix, item);
                }
            }
        }
    }

    fn use_leaf(&mut self, prefix: &mut Vec<String>, ident: &syn::Ident) {
        prefix.push(ident.to_string());
        let path = prefix.clone();
        self.judge(&path, ident.span().start().line);
        prefix.pop();
    }

    /// Paths inside macro calls are plain tokens: finds `crate :: name` and `super :: name`.
    fn tokens(&mut self, tokens: TokenStream) {
        let trees: Vec<TokenTree> = tokens.into_iter().collect();
        for (i, tree) in trees.iter().enumerate() {
            match tree {
                TokenTree::Group(group) => self.tokens(group.stream()),
                TokenTree::Ident(ident) if ident == "crate" || ident == "super" => {
                    let mut segments = vec![ident.to_string()];
                    let mut j = i + 1;
                    while let (
                        Some(TokenTree::Punct(a)),
                        Some(TokenTree::Punct(b)),
                        Some(TokenTree::Ident(next)),
                    ) = (trees.get(j), trees.get(j + 1), trees.get(j + 2))
                    {
                        if a.as_char() != ':' || b.as_char() != ':' {
                            break;
                        }
                        segments.push(next.to_string());
                        j += 3;
                    }
                    if segments.len() > 1 {
                        self.judge(&segments, ident.span().start().line);
                    }
                }
                _ => {}
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses {
    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        self.module.push(item.ident.to_string());
        syn::visit::visit_item_mod(self, item);
        self.module.pop();
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if let Some(first) = path.segments.first() {
            self.judge(&segments, first.ident.span().start().line);
        }
        syn::visit::visit_path(self, path);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.tokens(mac.tokens.clone());
        syn::visit::visit_macro(self, mac);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(path: &str) -> Vec<String> {
        path.split("::").map(str::to_owned).collect()
    }

    fn upward(text: &str, at: &str, layer: &'static str) -> Vec<String> {
        upward_in(text, &module(at), layer)
            .unwrap()
            .into_iter()
            .map(|u| format!("{}->{}:{}", u.from, u.to, u.path))
            .collect()
    }

    #[test]
    fn a_use_of_a_higher_layer_is_found_in_every_form() {
        let text = "
            use crate::ops::state::Layout;
            use crate::{model::Country, kernel::{maps::Lookup, swap}};
            use super::super::super::cli::Cli;
            use super::super::model::Near;
            fn f() { let _ = crate::agent::run(); assert!(matches!(x, crate::ops::Kind::A)); }
            mod tests { use super::super::super::super::ops::X; }
        ";
        assert_eq!(
            upward(text, "data::mmdb::tree", "data"),
            [
                "data->ops:crate::ops::state::Layout",
                "data->kernel:crate::kernel::maps::Lookup",
                "data->kernel:crate::kernel::swap",
                "data->cli:super::super::super::cli::Cli",
                "data->agent:crate::agent::run",
                "data->ops:crate::ops::Kind::A",
                "data->ops:super::super::super::super::ops::X",
            ]
        );
    }

    #[test]
    fn uses_of_the_same_or_lower_layers_and_of_other_crates_pass() {
        let text = "
            use crate::model::Country;
            use super::paint;
            use std::path::Path;
            use aya::maps::Array;
            fn f() { let _ = crate::data::read(); let _ = super::super::model::X; }
        ";
        assert!(upward(text, "compile::artifact", "compile").is_empty());
    }

    #[test]
    fn every_layer_has_a_rank_in_order() {
        assert!(rank("sys") < rank("model"));
        assert!(rank("ops") < rank("agent"));
        assert!(rank("agent") < rank("cli"));
    }
}
