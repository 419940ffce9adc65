//! `chatbridge`: parses the command line and hands it to the library (`chatbridge::cli`).

use std::process::ExitCode;

use clap::Parser;

use chatbridge::cli::{Cli, Command, bench, check, deadletters, report, run, runtime};
use chatbridge::config::LogFormat;
use chatbridge::load::LoadOptions;
use chatbridge::{demo, telemetry};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = cli.config;
    if cli.command.is_none() && !config.exists() {
        // A bare `chatbridge` on a machine without a configuration: what to do, not an error about /etc.
        eprintln!(
            "No configuration at {} (-c FILE or CHATBRIDGE_CONFIG names another).\n\n  \
             chatbridge demo             try it: simulated platforms and a bridge, no account needed\n  \
             chatbridge check -c FILE    check a configuration (config.example.toml documents every key)\n  \
             chatbridge run -c FILE      run it\n  \
             chatbridge --help           everything else",
            config.display()
        );
        return ExitCode::from(2);
    }
    match cli.command.unwrap_or(Command::Run) {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(shell, &mut Cli::command(), "chatbridge", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Manpage => report(chatbridge::cli::manpage::render(&mut std::io::stdout()).map_err(Into::into)),
        Command::Check { connect, without_secrets } => check::check(&config, connect, without_secrets),
        Command::Migrate => report(check::migrate(&config)),
        Command::Status => report(check::status(&config)),
        Command::Deadletters { action } => report(deadletters::dead_letters(&config, action)),
        Command::Bridges { action } => report(chatbridge::cli::bridges::bridges(&config, action)),
        Command::Run => report(run::run(&config, cli.log_format)),
        Command::Bench {
            post,
            read,
            gateway,
            token,
            messages,
            concurrency,
            rate,
            pid,
            time_limit,
            in_memory,
            full_sync,
            store,
            instances,
            rooms,
            provision,
            seconds,
            burst,
            media,
            to,
            no_coalesce,
            suite,
            rounds,
            null_relay,
        } => {
            telemetry::init(cli.log_format.unwrap_or(LogFormat::Pretty), "warn");
            if let Some([post, read]) = null_relay.as_deref() {
                let (post, read) = (*post, *read);
                return report(runtime().and_then(|rt| {
                    rt.block_on(async move {
                        let stop = tokio_util::sync::CancellationToken::new();
                        let on_signal = stop.clone();
                        tokio::spawn(async move {
                            let _ = tokio::signal::ctrl_c().await;
                            on_signal.cancel();
                        });
                        chatbridge::cli::null_relay::run(post, read, stop).await
                    })
                }));
            }
            if suite {
                let options = chatbridge::cli::suite::SuiteOptions { rounds, messages };
                return report(runtime().and_then(|rt| rt.block_on(chatbridge::cli::suite::run(options))));
            }
            if let (Some(store), Some(count)) = (&store, rooms.or(provision)) {
                let options = chatbridge::cli::rooms_bench::RoomsOptions {
                    rooms: count,
                    instances: instances.into(),
                    store: store.clone(),
                    rate: rate.unwrap_or(1000.0),
                    seconds,
                    provision: provision.is_some(),
                };
                return report(runtime().and_then(|rt| rt.block_on(chatbridge::cli::rooms_bench::run(options))));
            }
            if instances > 2 {
                return report(Err(anyhow::anyhow!("--instances above 2 goes with --rooms or --provision")));
            }
            if let Some(items) = media {
                return report(runtime().and_then(|rt| {
                    let run = rt.block_on(chatbridge::cli::media_bench::run(items))?;
                    println!(
                        "media: {items} photos of 200 KB → Fishroom (links) and Yunhu (uploads): all arrived after {:.2} s \
                         ({:.0} items/s); {} links, {} images, {} failed; RSS {:.1} MB before, rose {:.1} MB at most",
                        run.elapsed.as_secs_f64(),
                        items as f64 / run.elapsed.as_secs_f64(),
                        run.linked,
                        run.uploaded,
                        run.failed,
                        run.rss_before as f64 / 1e6,
                        run.rss_growth as f64 / 1e6,
                    );
                    Ok(())
                }));
            }
            if let Some(messages) = burst {
                let coalesce = !no_coalesce;
                return report(runtime().and_then(|rt| {
                    let burst = rt.block_on(chatbridge::cli::burst::run(messages, to, coalesce))?;
                    println!(
                        "burst of {messages} → {to:?} (coalesce {}): last visible after {:.2} s; {} platform messages; \
                         lost {}; {}",
                        if coalesce { "on" } else { "off" },
                        burst.elapsed.as_secs_f64(),
                        burst.sent,
                        burst.lost,
                        if burst.in_order { "in order" } else { "OUT OF ORDER" }
                    );
                    Ok(())
                }));
            }
            let options = LoadOptions {
                post_url: post.unwrap_or_default(),
                read_url: read.unwrap_or_default(),
                post_gateway: gateway,
                token,
                messages,
                concurrency,
                rate,
                grace: std::time::Duration::from_secs(5),
                pid,
                time_limit,
            };
            let target = bench::Target { in_memory, full_sync, store, instances };
            report(runtime().and_then(|rt| rt.block_on(bench::bench(options, target))))
        }
        Command::Sim { config_out, rooms, port, duration } => {
            telemetry::init(cli.log_format.unwrap_or(LogFormat::Pretty), "warn");
            report(runtime().and_then(|rt| rt.block_on(chatbridge::simulate::run(rooms, port, &config_out, duration))))
        }
        Command::Demo { duration } => {
            telemetry::init(cli.log_format.unwrap_or(LogFormat::Pretty), "warn,chatbridge=info");
            report(runtime().and_then(|rt| rt.block_on(demo::run(duration))))
        }
    }
}
