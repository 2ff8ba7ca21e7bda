//! The house rules a newcomer relies on, checked on the sources themselves
//! (parsed with syn, not grepped): the top-level modules of `src/` import
//! each other without a cycle, no function outside the tests is over 100
//! lines, the platforms return data and print nothing, and every test that
//! runs a scenario is in the end-to-end group of `.config/nextest.toml`
//! (it runs alone, so its load generator has the machine it needs).

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
};

use syn::visit::Visit;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Functions allowed over the limit: data tables, with why.
const LONG_DATA_TABLES: &[&str] = &[];

const MAX_FUNCTION_LINES: usize = 100;

/// One source file of the library, with its module path.
struct Module {
    path: Vec<String>,
    file: PathBuf,
    ast: syn::File,
}

fn parse(file: &Path) -> syn::File {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    syn::parse_file(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()))
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg")
            && a.meta
                .require_list()
                .is_ok_and(|l| l.tokens.to_string().split_whitespace().any(|t| t == "test"))
    })
}

/// Every module file of the library reached from `src/lib.rs`, leaving out
/// what is compiled for tests only.
fn library() -> Vec<Module> {
    let mut out = Vec::new();
    let lib = Path::new(ROOT).join("src/lib.rs");
    walk(Vec::new(), lib, &mut out);
    out
}

fn walk(path: Vec<String>, file: PathBuf, out: &mut Vec<Module>) {
    let ast = parse(&file);
    let dir = if file.ends_with("lib.rs") || file.ends_with("mod.rs") {
        file.parent().unwrap().to_path_buf()
    } else {
        file.with_extension("")
    };
    for item in &ast.items {
        if let syn::Item::Mod(m) = item
            && m.content.is_none()
            && !is_cfg_test(&m.attrs)
        {
            let name = m.ident.to_string();
            let flat = dir.join(format!("{name}.rs"));
            let nested = dir.join(&name).join("mod.rs");
            let child = if flat.exists() { flat } else { nested };
            let mut child_path = path.clone();
            child_path.push(name);
            walk(child_path, child, out);
        }
    }
    out.push(Module { path, file, ast });
}

/// The top-level modules a file's paths name, resolved from where it is.
struct Uses<'a> {
    here: &'a [String],
    tops: &'a BTreeSet<String>,
    /// Items the crate root re-exports (`crate::Error` is `errors`).
    reexports: &'a BTreeMap<String, String>,
    found: BTreeSet<String>,
}

impl Uses<'_> {
    fn segments(&mut self, segments: Vec<String>) {
        let mut at: Vec<String> = self.here.to_vec();
        let mut rest = segments.as_slice();
        match rest.first().map(String::as_str) {
            Some("crate") => {
                at.clear();
                rest = &rest[1..];
            }
            Some("super") => {
                while rest.first().map(String::as_str) == Some("super") {
                    at.pop();
                    rest = &rest[1..];
                }
            }
            Some("self") => rest = &rest[1..],
            _ => return,
        }
        let top = match (at.first(), rest.first()) {
            (Some(top), _) => top.clone(),
            (None, Some(first)) => match self.reexports.get(first) {
                Some(module) => module.clone(),
                None => first.clone(),
            },
            (None, None) => return,
        };
        if self.tops.contains(&top) {
            self.found.insert(top);
        }
    }

    fn tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut all = prefix.clone();
                all.push(n.ident.to_string());
                self.segments(all);
            }
            syn::UseTree::Rename(r) => {
                let mut all = prefix.clone();
                all.push(r.ident.to_string());
                self.segments(all);
            }
            syn::UseTree::Glob(_) => self.segments(prefix.clone()),
            syn::UseTree::Group(g) => {
                for t in &g.items {
                    self.tree(prefix, t);
                }
            }
        }
    }
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_cfg_test(&f.attrs) {
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
        if !is_cfg_test(&u.attrs) {
            self.tree(&mut Vec::new(), &u.tree);
        }
    }

    fn visit_path(&mut self, p: &'ast syn::Path) {
        self.segments(p.segments.iter().map(|s| s.ident.to_string()).collect());
        syn::visit::visit_path(self, p);
    }

    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        // Paths inside macro calls (`format!`, `matches!`) are tokens:
        // look for `crate :: x` in them.
        let tokens: Vec<String> = m
            .tokens
            .clone()
            .into_iter()
            .map(|t| t.to_string())
            .collect();
        for w in tokens.windows(4) {
            if w[0] == "crate" && w[1] == ":" && w[2] == ":" {
                self.segments(vec!["crate".into(), w[3].clone()]);
            }
        }
        syn::visit::visit_macro(self, m);
    }
}

/// top-level module -> the top-level modules it uses.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = library();
    let tops: BTreeSet<String> = modules
        .iter()
        .filter(|m| m.path.len() == 1)
        .map(|m| m.path[0].clone())
        .collect();
    let lib = modules.iter().find(|m| m.path.is_empty()).unwrap();
    let mut reexports = BTreeMap::new();
    for item in &lib.ast.items {
        if let syn::Item::Use(u) = item
            && let syn::UseTree::Path(p) = &u.tree
        {
            let module = p.ident.to_string();
            let mut names = Vec::new();
            collect_names(&p.tree, &mut names);
            for n in names {
                reexports.insert(n, module.clone());
            }
        }
    }
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in modules.iter().filter(|m| !m.path.is_empty()) {
        let mut uses = Uses {
            here: &m.path,
            tops: &tops,
            reexports: &reexports,
            found: BTreeSet::new(),
        };
        uses.visit_file(&m.ast);
        let top = &m.path[0];
        let entry = graph.entry(top.clone()).or_default();
        entry.extend(uses.found.into_iter().filter(|u| u != top));
    }
    graph
}

fn collect_names(tree: &syn::UseTree, out: &mut Vec<String>) {
    match tree {
        syn::UseTree::Name(n) => out.push(n.ident.to_string()),
        syn::UseTree::Rename(r) => out.push(r.rename.to_string()),
        syn::UseTree::Path(p) => collect_names(&p.tree, out),
        syn::UseTree::Group(g) => g.items.iter().for_each(|t| collect_names(t, out)),
        syn::UseTree::Glob(_) => {}
    }
}

/// A cycle through `start`, if there is one.
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_string());
                return Some(cycle);
            }
            if seen.insert(next.clone()) {
                let mut longer = path.clone();
                longer.push(next.clone());
                stack.push((next.clone(), longer));
            }
        }
    }
    None
}

#[test]
fn no_two_modules_of_src_import_each_other_in_a_cycle() {
    let graph = module_graph();
    assert!(
        graph.get("errors").is_some_and(|e| e.contains("platform")),
        "the check sees errors.rs use the platform layer: {graph:?}"
    );
    let cycles: Vec<String> = graph
        .keys()
        .filter_map(|m| cycle_from(&graph, m))
        .map(|c| c.join(" -> "))
        .collect();
    assert!(cycles.is_empty(), "import cycles: {cycles:#?}");
}

/// Every function with a body, with its name and lines, outside what is
/// compiled for tests.
struct Functions<'a> {
    file: &'a Path,
    found: Vec<(String, usize)>,
}

impl Functions<'_> {
    fn add(&mut self, name: &syn::Ident, block: &syn::Block) {
        use syn::spanned::Spanned;
        let span = block.span();
        let lines = span.end().line - name.span().start().line + 1;
        let file = self.file.strip_prefix(ROOT).unwrap_or(self.file);
        self.found
            .push((format!("{}: {name}", file.display()), lines));
    }
}

impl<'ast> Visit<'ast> for Functions<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_cfg_test(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }

    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if !is_cfg_test(&f.attrs) {
            self.add(&f.sig.ident, &f.block);
            syn::visit::visit_item_fn(self, f);
        }
    }

    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if !is_cfg_test(&f.attrs) {
            self.add(&f.sig.ident, &f.block);
            syn::visit::visit_impl_item_fn(self, f);
        }
    }

    fn visit_trait_item_fn(&mut self, f: &'ast syn::TraitItemFn) {
        if let Some(block) = &f.default {
            self.add(&f.sig.ident, block);
        }
        syn::visit::visit_trait_item_fn(self, f);
    }
}

#[test]
fn no_function_in_src_outside_tests_is_over_100_lines() {
    let mut all = Vec::new();
    for m in library() {
        let mut f = Functions {
            file: &m.file,
            found: Vec::new(),
        };
        f.visit_file(&m.ast);
        all.extend(f.found);
    }
    assert!(
        all.len() > 500,
        "the check sees the functions: {}",
        all.len()
    );
    let long: Vec<String> = all
        .iter()
        .filter(|(name, lines)| {
            *lines > MAX_FUNCTION_LINES && !LONG_DATA_TABLES.iter().any(|t| name.ends_with(t))
        })
        .map(|(name, lines)| format!("{name} ({lines} lines)"))
        .collect();
    assert!(
        long.is_empty(),
        "over {MAX_FUNCTION_LINES} lines: {long:#?}"
    );
}

/// Macros that print, by name.
struct Prints {
    found: Vec<String>,
}

impl<'ast> Visit<'ast> for Prints {
    fn visit_macro(&mut self, m: &'ast syn::Macro) {
        if let Some(name) = m.path.get_ident().map(ToString::to_string)
            && ["println", "eprintln", "print", "eprint"].contains(&name.as_str())
        {
            self.found.push(format!("{name}! {}", m.tokens));
        }
        syn::visit::visit_macro(self, m);
    }
}

#[test]
fn the_platforms_return_data_and_the_commands_print_it() {
    let mut printing = Vec::new();
    let mut files = 0;
    for m in library()
        .iter()
        .filter(|m| m.path.first().is_some_and(|p| p == "platform"))
    {
        files += 1;
        let mut p = Prints { found: Vec::new() };
        p.visit_file(&m.ast);
        printing.extend(
            p.found
                .into_iter()
                .map(|f| format!("{}: {f}", m.file.display())),
        );
    }
    assert!(
        files > 40,
        "the check sees the platform layer: {files} files"
    );
    assert!(printing.is_empty(), "{printing:#?}");
    // The commands do print: the check would see it.
    let mut p = Prints { found: Vec::new() };
    p.visit_file(&parse(&Path::new(ROOT).join("src/commands/up.rs")));
    assert!(!p.found.is_empty());
}

/// The `test(/regex/)` alternatives of the end-to-end group's filter.
fn end_to_end_filter() -> Vec<regex::Regex> {
    let text = std::fs::read_to_string(Path::new(ROOT).join(".config/nextest.toml")).unwrap();
    let config: toml::Value = toml::from_str(&text).unwrap();
    let overrides = config["profile"]["default"]["overrides"]
        .as_array()
        .expect("profile.default.overrides");
    let filter = overrides
        .iter()
        .find(|o| o.get("test-group").and_then(|g| g.as_str()) == Some("end-to-end"))
        .and_then(|o| o["filter"].as_str())
        .expect("an override puts tests in the end-to-end group");
    // Alternatives are joined by ` | `; a regex may hold a `|` of its own.
    filter
        .split(" | ")
        .map(|part| {
            let re = part
                .trim()
                .strip_prefix("test(/")
                .and_then(|r| r.strip_suffix("/)"))
                .unwrap_or_else(|| panic!("expected test(/regex/), got `{part}`"));
            regex::Regex::new(re).unwrap()
        })
        .collect()
}

/// Test functions (by `module::name`) whose body runs a scenario: the
/// gameday binary with `run`, or a `Runner`.
struct ScenarioTests {
    module: String,
    found: Vec<String>,
    all: usize,
}

impl<'ast> Visit<'ast> for ScenarioTests {
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        let is_test = f.attrs.iter().any(|a| {
            let p = a.path();
            p.is_ident("test") || p.segments.last().is_some_and(|s| s.ident == "test")
        });
        if is_test {
            self.all += 1;
            let body = quote_tokens(&f.block);
            let runs = body.contains("\"run\"") || body.contains("Runner");
            if runs {
                self.found.push(format!("{}::{}", self.module, f.sig.ident));
            }
        }
        syn::visit::visit_item_fn(self, f);
    }
}

fn quote_tokens(block: &syn::Block) -> String {
    use quote::ToTokens;
    block.to_token_stream().to_string()
}

#[test]
fn every_test_that_runs_a_scenario_is_in_the_end_to_end_group() {
    let filter = end_to_end_filter();
    let mut runs = Vec::new();
    let mut all = 0;
    for entry in std::fs::read_dir(Path::new(ROOT).join("tests/it")).unwrap() {
        let file = entry.unwrap().path();
        if file.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let module = file.file_stem().unwrap().to_string_lossy().into_owned();
        let mut v = ScenarioTests {
            module,
            found: Vec::new(),
            all: 0,
        };
        v.visit_file(&parse(&file));
        runs.extend(v.found);
        all += v.all;
    }
    assert!(
        runs.len() >= 8,
        "the check sees the scenario runs: {runs:?}"
    );
    assert!(all > runs.len(), "and tests that run none");
    let outside: Vec<&String> = runs
        .iter()
        .filter(|name| !filter.iter().any(|re| re.is_match(name)))
        .collect();
    assert!(
        outside.is_empty(),
        "tests that run a scenario but are not in the end-to-end group: {outside:?}"
    );
}
