new WebSocket("/ws");
