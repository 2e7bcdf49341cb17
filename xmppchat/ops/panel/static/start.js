// Starts the panel once every page script has registered itself.
Panel.start();
