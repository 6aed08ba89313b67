//! The bridge from the core's `tracing` diagnostics to a module's Lua logger.

use std::sync::{Arc, Mutex};

use mlua::Function;
use tracing::field::{Field, Visit};
use tracing::{Dispatch, Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

pub(crate) type Diagnostics = Arc<Mutex<Vec<(Level, String)>>>;

/// Collects the core's `tracing` events during one call so they can be logged afterwards.
pub(crate) struct Collector(Diagnostics);

#[derive(Default)]
pub(crate) struct MessageText(String);

impl Visit for MessageText {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        let _ =
            if field.name() == "message" { write!(self.0, "{value:?}") } else { write!(self.0, " {}={value:?}", field.name()) };
    }
}

impl<S: Subscriber> Layer<S> for Collector {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut text = MessageText::default();
        event.record(&mut text);
        if let Ok(mut buffer) = self.0.lock() {
            buffer.push((*event.metadata().level(), text.0));
        }
    }
}

/// Hands the core's `tracing` diagnostics to a module's logger.
pub(crate) struct Tracer {
    pub(crate) log: Function,
    dispatch: Dispatch,
    diagnostics: Diagnostics,
}

impl Tracer {
    pub(crate) fn new(log: Function) -> Self {
        let diagnostics: Diagnostics = Arc::default();
        let subscriber = tracing_subscriber::registry().with(Collector(Arc::clone(&diagnostics)));
        Self { log, dispatch: Dispatch::new(subscriber), diagnostics }
    }

    /// Runs `f` with the core's diagnostics captured, then hands them to the module logger.
    pub(crate) fn traced<R>(&self, f: impl FnOnce() -> R) -> mlua::Result<R> {
        let result = tracing::dispatcher::with_default(&self.dispatch, f);
        let drained: Vec<(Level, String)> = match self.diagnostics.lock() {
            Ok(mut buffer) => buffer.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        for (level, text) in drained {
            let level = match level {
                Level::ERROR => "error",
                Level::WARN => "warn",
                Level::INFO => "info",
                _ => "debug",
            };
            self.log.call::<()>((level, text))?;
        }
        Ok(result)
    }
}
