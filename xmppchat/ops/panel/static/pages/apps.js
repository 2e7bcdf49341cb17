// The "Applications" page (issue 19): not built yet.
"use strict";

Panel.page("apps", {
  title: "Applications",
  order: 70,
  render: async (root, params) => {
    root.append(Panel.h("p", {class: "muted", text: "This page is not built yet."}));
  },
});
