from ci_guard.startup import pause_gc, skip_metadata_lookups

if __name__ == "__main__":
    pause_gc()  # before click and the CLI are imported (ci_guard.startup); cli.main resumes it
    skip_metadata_lookups()
    from ci_guard.cli import main

    main()
