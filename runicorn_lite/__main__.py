from runicorn_lite.cli import main

if __name__ == "__main__":  # guarded: worker processes of a cold scan re-import this module
    main()
