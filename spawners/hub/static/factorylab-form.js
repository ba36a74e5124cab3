// FactoryLab spawn form: a card fills the advanced fields; editing a field ticks
// "use these settings"; the partition sets the limits shown and enforced by the browser.
// The hub validates everything again; this script only helps.
(function () {
  "use strict";
  const root = document.getElementById("factorylab-form");
  if (!root) return;
  const data = JSON.parse(document.getElementById("factorylab-form-data").textContent);
  const field = (name) => root.querySelector(`[name="${name}"].fl-field`);
  const customise = document.getElementById("fl-customise");
  const advanced = document.getElementById("fl-advanced");
  const custom = document.getElementById("profile-custom");
  let filling = false;

  function applyPartition() {
    const name = field("partition").value;
    const p = data.partitions[name];
    if (!p) return;
    const gpu = p.kind === "gpu";
    root.querySelectorAll(".fl-gpu-only").forEach((el) => el.classList.toggle("fl-hidden", !gpu));
    const gpus = field("gpus");
    gpus.max = p.max_gpus;
    gpus.disabled = !gpu;
    const type = field("gpu_type");
    type.disabled = !gpu;
    const keep = type.value;
    type.replaceChildren(new Option("any", ""));
    p.gpu_types.forEach((kind) => type.add(new Option(kind, kind, false, kind === keep)));
    field("cpus").max = p.max_cpus;
    root.querySelectorAll("tr[data-partition]").forEach((row) =>
      row.classList.toggle("table-active", row.dataset.partition === name));
    document.getElementById("fl-limits").textContent =
      `Most per session on ${name}: ` + (gpu ? `${p.max_gpus} GPUs, ` : "") +
      `${p.max_cpus} CPUs, ${p.max_memory}, ${p.max_walltime}.` +
      (p.load ? ` Free now: ${p.load}.` : "");
  }

  function fill(values) {
    filling = true;
    for (const [name, value] of Object.entries(values)) {
      const el = field(name);
      if (el) el.value = value;
    }
    applyPartition();
    filling = false;
  }

  root.querySelectorAll("input.fl-profile").forEach((radio) =>
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      if (radio.value === "") {
        customise.checked = true;
        advanced.open = true;
        return;
      }
      customise.checked = false;
      fill(data.profiles[radio.value] || {});
    }));

  root.querySelectorAll(".fl-field").forEach((el) =>
    el.addEventListener("change", () => {
      if (filling) return;
      if (el.name === "partition") applyPartition();
      customise.checked = true;
    }));

  customise.addEventListener("change", () => {
    if (customise.checked && !root.querySelector("input.fl-profile:checked")) custom.checked = true;
  });
  applyPartition();
})();
