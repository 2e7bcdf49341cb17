// The "Overview" page (issue 19): not built yet.
"use strict";

Panel.page("overview", {
  title: "Overview",
  order: 10,
  render: async (root, params) => {
    root.append(Panel.h("p", {class: "muted", text: "This page is not built yet."}));
  },
});
