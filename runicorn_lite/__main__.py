from runicorn_lite.cli import main

main()
