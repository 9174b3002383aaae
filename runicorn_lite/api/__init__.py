"""V1 and V2 over the index and the run directories, the health check and the web page."""
