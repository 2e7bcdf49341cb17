// The "Announcements" page (issue 19): not built yet.
"use strict";

Panel.page("announcements", {
  title: "Announcements",
  order: 60,
  render: async (root, params) => {
    root.append(Panel.h("p", {class: "muted", text: "This page is not built yet."}));
  },
});
