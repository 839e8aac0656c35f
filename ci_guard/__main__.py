from ci_guard.entry import main

if __name__ == "__main__":
    main()
