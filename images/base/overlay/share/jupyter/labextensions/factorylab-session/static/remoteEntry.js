/*
 * FactoryLab session: time left in the status bar, warnings before the end, and
 * "extend" (a click on the item, or the command palette).
 *
 * A hand-written JupyterLab 4 federated extension: it takes JupyterLab's own packages
 * from the shared module scope, so there is nothing to build and no npm dependency.
 * Facts come from the session's server extension (factorylab_session), which asks the
 * hub; the hub applies the site's policy.
 */
var _JUPYTERLAB = (window._JUPYTERLAB = window._JUPYTERLAB || {});
(function () {
  "use strict";
  let shareScope = null;

  async function shared(name) {
    const versions = shareScope && shareScope[name];
    if (!versions) {
      throw new Error("factorylab-session: " + name + " is not shared by JupyterLab");
    }
    const newest = Object.keys(versions).sort().pop();
    const factory = await versions[newest].get();
    return factory();
  }

  function format(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return h > 0 ? h + " h " + String(m).padStart(2, "0") + " min" : m + " min " + String(s % 60).padStart(2, "0") + " s";
  }

  async function buildPlugin() {
    const statusbar = await shared("@jupyterlab/statusbar");
    const apputils = await shared("@jupyterlab/apputils");
    const services = await shared("@jupyterlab/services");
    const coreutils = await shared("@jupyterlab/coreutils");
    const widgets = await shared("@lumino/widgets");

    async function call(path, init) {
      const settings = services.ServerConnection.makeSettings();
      const url = coreutils.URLExt.join(settings.baseUrl, "factorylab", path);
      const response = await services.ServerConnection.makeRequest(url, init || {}, settings);
      const data = await response.json().catch(() => ({}));
      return { ok: response.ok, data: data };
    }

    return {
      id: "factorylab-session:time-left",
      description: "Shows the session's time left, warns before the end, and extends it.",
      autoStart: true,
      requires: [statusbar.IStatusBar],
      optional: [apputils.ICommandPalette],
      activate: function (app, bar, palette) {
        const node = document.createElement("span");
        node.className = "factorylab-time-left";
        node.title = "Time left in this session (click to extend)";
        node.style.cursor = "pointer";
        node.style.padding = "0 6px";
        node.textContent = "Time left: …";
        const item = new widgets.Widget({ node: node });
        item.id = "factorylab-time-left";
        let facts = null;
        let fetchedAt = 0;
        const warned = new Set();

        async function extend() {
          const choice = await apputils.showDialog({
            title: "Extend this session?",
            body: facts && facts.extend_by_seconds
              ? "Add " + format(facts.extend_by_seconds) + ", within your site's limits."
              : "Ask for more time, within your site's limits.",
            buttons: [apputils.Dialog.cancelButton(), apputils.Dialog.okButton({ label: "Extend" })],
          });
          if (!choice.button.accept) {
            return;
          }
          const result = await call("session/extend", { method: "POST", body: "{}" });
          if (result.ok) {
            facts = result.data;
            fetchedAt = Date.now();
            warned.clear();
            apputils.Notification.success("Session extended: " + format(facts.time_left_seconds) + " left.", { autoClose: 5000 });
          } else {
            apputils.Notification.error(result.data.message || "The session could not be extended.", { autoClose: false });
          }
          render();
        }

        function render() {
          if (!facts || facts.time_left_seconds === undefined) {
            node.textContent = "Time left: unknown";
            return;
          }
          const left = facts.time_left_seconds - (Date.now() - fetchedAt) / 1000;
          node.textContent = "Time left: " + format(left);
          node.dataset.timeLeft = String(Math.round(left));
          for (const mark of facts.warnings_at_seconds || []) {
            if (left <= mark && !warned.has(mark)) {
              warned.add(mark);
              const actions = facts.extendable_until ? [{ label: "Extend", callback: extend }] : [];
              apputils.Notification.warning(
                "Your session ends in " + format(left) + ". Save your work" + (actions.length ? ", or extend it." : "."),
                { autoClose: false, actions: actions }
              );
            }
          }
        }

        async function refresh() {
          try {
            const result = await call("session");
            if (result.ok) {
              facts = result.data;
              fetchedAt = Date.now();
            }
          } catch (error) {
            console.warn("factorylab-session:", error);
          }
          render();
        }

        node.addEventListener("click", extend);
        app.commands.addCommand("factorylab:extend-session", { label: "Extend this session", execute: extend });
        if (palette) {
          palette.addItem({ command: "factorylab:extend-session", category: "FactoryLab" });
        }
        bar.registerStatusItem("factorylab-session:time-left", { item: item, align: "left", rank: 5 });
        refresh();
        setInterval(refresh, 30000);
        setInterval(render, 1000);
      },
    };
  }

  _JUPYTERLAB["factorylab-session"] = {
    init: function (scope) {
      shareScope = scope;
    },
    get: async function (module) {
      if (module !== "./extension") {
        throw new Error("factorylab-session has no module " + module);
      }
      const plugin = await buildPlugin();
      return function () {
        return { __esModule: true, default: [plugin] };
      };
    },
  };
})();
