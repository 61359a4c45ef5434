"""Where the database is and how to talk to it: the target ladder, drivers, the server (probe,
lock, pre-flight) and throwaway embedded servers."""
