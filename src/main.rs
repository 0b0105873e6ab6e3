//! tuwen command line: flags → library options ([`cli`]), one library job per command, and the
//! printing of what it did.
mod cli;
mod show;

use anyhow::{bail, Context, Result};
use clap::Parser;
use cli::{Cli, Cmd};
use tuwen::jobs;
use tuwen::retrieval::Bank;

fn main() -> Result<()> {
    // `tuwen … | head` ends quietly, as other command-line tools do, instead of a panic on the
    // closed pipe (Rust ignores SIGPIPE by default).
    // SAFETY: restoring a signal's default disposition at start-up, before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // After parsing, so `--help` and argument errors don't pay for a restart.
    tuwen::blas::reexec_with_fast_kernels();
    match cli.cmd {
        Cmd::Extract(c) => {
            c.skips.check(&c.inputs())?;
            let out = jobs::extract::extract(&c.job()?)?;
            let shard = c.shard.map(|s| format!("shard {s}: ")).unwrap_or_default();
            let Some(st) = &out.stats else {
                println!(
                    "{shard}no id of {} falls in this part; nothing to do",
                    c.pairs.display()
                );
                return Ok(());
            };
            if let Some(sh) = &c.shard {
                eprintln!("shard {sh}: {} ids of this part", out.ids);
            }
            println!(
                "{} images: {} computed ({:.2} images/s), {} from cache, {} skipped; {:.1} s; features {}-d ({})",
                st.requested, st.computed, st.images_per_second, st.from_cache, st.skipped,
                st.seconds, out.spec.dim(), out.spec.cache_key()
            );
            show::skips(&out.skipped, c.skips.path())?;
            match out.nothing_usable {
                Some(e) => Err(e.into()),
                None => Ok(()),
            }
        }
        Cmd::Fit(c) => {
            let opts = c.options()?;
            // Before the fit, so a wrong --out or --skip-list costs nothing (save checks again).
            tuwen::model::Model::check_save_target(&c.out, &c.inputs())?;
            c.skips.check(&c.inputs())?;
            let (model, rep) = jobs::fit::fit(&opts)?;
            model
                .save(&c.out)
                .with_context(|| format!("saving the model to {}", c.out.display()))?;
            for e in &rep.extract {
                eprintln!(
                    "images: {} computed ({:.2}/s), {} from cache, {} skipped",
                    e.computed, e.images_per_second, e.from_cache, e.skipped
                );
            }
            eprintln!("captions: {}", rep.oov.summary());
            let top: Vec<String> = rep
                .correlations
                .iter()
                .take(5)
                .map(|c| format!("{c:.3}"))
                .collect();
            println!(
                "fitted on {} pairs / {} images in {:.1} s; canonical correlations {} …; model in {}",
                rep.pairs_used,
                rep.images_used,
                rep.fit_seconds,
                top.join(" "),
                c.out.display()
            );
            if let Some(k) = &rep.contrastive {
                let at = |e: usize| k.history.iter().find(|h| h.epoch == e);
                println!(
                    "contrastive: kept epoch {} of {} run (held-out R@1+5+10 both ways {:.1}, CCA {:.1}; \
                     {} images held out), then trained on {} pairs ({} extra) for {} epochs; \
                     temperature {:.4}",
                    k.best_epoch,
                    k.history.len().saturating_sub(1),
                    at(k.best_epoch).map_or(f64::NAN, |h| h.stop_recall_sum),
                    at(0).map_or(f64::NAN, |h| h.stop_recall_sum),
                    k.stop_images,
                    k.train_pairs,
                    k.extra_pairs,
                    k.best_epoch,
                    k.final_temperature
                );
            }
            show::skips(&rep.skipped, c.skips.path())
        }
        Cmd::Eval(c) => {
            c.skips.check(&c.inputs())?;
            let emb = c.model.embedder(&c.run)?;
            let scorer = emb.scorer(c.score.options(Bank::Sets))?;
            let out = jobs::eval::evaluate(&emb, &scorer, &c.pairs, &c.images)?;
            let r = &out.report;
            if c.json {
                let mut v = serde_json::to_value(r)?;
                v["scoring"] = out.scoring.clone().into();
                println!("{v}");
            } else {
                println!(
                    "{} images × {} captions ({:.1} s); scores: {}",
                    r.n_images, r.n_texts, out.seconds, out.scoring
                );
                println!("              R@1    R@5   R@10   medr");
                for (name, x) in [("image→text", &r.i2t), ("text→image", &r.t2i)] {
                    println!(
                        "{name:<11} {:6.1} {:6.1} {:6.1} {:6.1}",
                        x.r1, x.r5, x.r10, x.medr
                    );
                }
                println!("mean recall {:.1}", r.mean_recall());
            }
            show::skips(&out.skipped, c.skips.path())
        }
        Cmd::Rank(c) => {
            c.skips.check(&c.inputs())?;
            let emb = c.model.embedder(&c.run)?;
            let todo = c.jobs()?;
            let ranker = jobs::rank::Ranker::new(&emb, emb.scorer(c.score.options(Bank::Sets))?);
            let outs = jobs::rank::rank_all(&ranker, &todo, &c.model.inputs())?;
            for r in &outs {
                println!(
                    "task {}: {} queries × {} gallery items → {} ({:.1} s; scores: {})",
                    r.direction.task(),
                    r.queries,
                    r.gallery,
                    r.path.display(),
                    r.seconds,
                    r.scoring
                );
            }
            show::rank_skips(outs, c.skips.path())
        }
        Cmd::Report(c) => {
            c.skips.check(&c.inputs())?;
            let emb = c.model.embedder(&c.run)?;
            let ranker = jobs::rank::Ranker::new(&emb, emb.scorer(c.score.options(Bank::Sets))?);
            let outs =
                jobs::report::teddy_report(&ranker, &c.teddy_dirs, &c.out, c.n, &c.model.inputs())?;
            for r in &outs {
                println!(
                    "task {}: {} queries → {}",
                    r.direction.task(),
                    r.queries,
                    r.path.display()
                );
            }
            println!("report: {}", c.out.display());
            show::rank_skips(outs, c.skips.path())
        }
        Cmd::Demo(c) => {
            let out = jobs::demo::demo(&c.options(), &mut |line| println!("{line}"))?;
            let r = &out.eval;
            println!(
                "eval on {} held-out images × {} captions: R@5 image→text {:.1}, text→image {:.1} (chance {:.1})",
                r.n_images, r.n_texts, r.i2t.r5, r.t2i.r5, 500.0 / r.n_images as f64
            );
            Ok(())
        }
        Cmd::Split(c) => {
            let out = jobs::split::split(&c.options()?)?;
            println!(
                "{} images held out (seed {}), {} kept for training → {}",
                out.held_out,
                c.seed,
                out.kept,
                c.out.display()
            );
            for n in &out.notes {
                eprintln!("{n}");
            }
            if let Some((d2, d3)) = &out.teddy {
                println!("laid out as {} and {}", d2.display(), d3.display());
            }
            Ok(())
        }
        Cmd::Explain(c) => show::explain(c),
        Cmd::Export(c) => {
            c.skips.check(&c.inputs())?;
            let emb = c.model.embedder(&c.run)?;
            let (_, out) = jobs::export::export(&emb, &c.options()?, &c.model.inputs())?;
            if c.json {
                println!("{}", serde_json::to_string(&out)?);
            } else {
                let files: Vec<String> =
                    out.files.iter().map(|p| p.display().to_string()).collect();
                println!(
                    "{} images, {} captions; {}-d embeddings ({:.1} s) → {}",
                    out.images,
                    out.texts,
                    out.dim,
                    out.seconds,
                    files.join(", ")
                );
                if let Some(o) = &out.oov {
                    eprintln!("captions: {}", o.summary());
                }
            }
            for n in out.notes() {
                eprintln!("{n}");
            }
            let mut skips = out.failed_images;
            skips.extend(out.empty_captions);
            show::skips(&skips, c.skips.path())
        }
        Cmd::Serve(c) => {
            if c.score.bank == Some(cli::BankArg::Sets) {
                bail!("serve answers one query at a time: there are no sets to use as banks (--bank train)");
            }
            let host: std::net::IpAddr = c
                .host
                .parse()
                .with_context(|| format!("--host {} is not an IP address", c.host))?;
            let t0 = std::time::Instant::now();
            let emb = c.model.embedder(&c.run)?;
            let scoring = c.score.options(Bank::Train).scoring;
            let g = tuwen::serve::Gallery::load(emb, &c.images, c.captions.as_deref(), scoring)?;
            // Without --quiet the start-up summary has said it already, naming them.
            if c.run.quiet && !g.skipped.is_empty() {
                eprintln!(
                    "{} files in {} are not usable images (left out)",
                    g.skipped.len(),
                    c.images.display()
                );
            }
            let addr = std::net::SocketAddr::new(host, c.port);
            tuwen::serve::serve(&g, addr, |a| {
                println!(
                    "serving {} images and {} captions on http://{a}/ (ready in {:.1} s)",
                    g.n_images(),
                    g.n_captions(),
                    t0.elapsed().as_secs_f64()
                );
                use std::io::Write;
                let _ = std::io::stdout().flush();
            })?;
            Ok(())
        }
    }
}
