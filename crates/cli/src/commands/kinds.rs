//! `fgstp kinds`: the model kinds this build knows, from the recipe registry.

use anyhow::Result;
use fgstp_train::recipes::{markdown_table, RECIPES};
use serde::Serialize;

#[derive(clap::Args)]
pub struct Args {
    /// Print the kinds' names only, one per line (for scripts)
    #[arg(long, conflicts_with_all = ["json", "markdown"])]
    names: bool,
    /// Print JSON
    #[arg(long, conflicts_with = "markdown")]
    json: bool,
    /// Print the Markdown table the docs carry
    #[arg(long)]
    markdown: bool,
}

#[derive(Serialize)]
struct Kind {
    kind: &'static str,
    model: &'static str,
    frames_per_sample: usize,
    feature_cache: bool,
    reference: &'static str,
    config: &'static str,
    lr_recipe: &'static str,
}

pub fn run(args: Args) -> Result<()> {
    if args.markdown {
        print!("{}", markdown_table());
        return Ok(());
    }
    let kinds: Vec<Kind> = RECIPES
        .iter()
        .map(|r| {
            let about = r.about();
            Kind {
                kind: about.name,
                model: about.model,
                frames_per_sample: r.frames(),
                feature_cache: r.has_feature_cache(),
                reference: about.reference,
                config: about.config,
                lr_recipe: about.lr_recipe,
            }
        })
        .collect();
    if args.names {
        for k in &kinds {
            println!("{}", k.kind);
        }
    } else if args.json {
        println!("{}", serde_json::to_string_pretty(&kinds)?);
    } else {
        for k in &kinds {
            println!("{}", k.kind);
            println!("  model:          {}", k.model);
            println!("  frames/sample:  {}", k.frames_per_sample);
            println!(
                "  feature cache:  {}",
                if k.feature_cache { "yes" } else { "no" }
            );
            println!("  reference:      {}", k.reference);
            println!("  config:         {} ({})", k.config, k.lr_recipe);
        }
    }
    Ok(())
}
