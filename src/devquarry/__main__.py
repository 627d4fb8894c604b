from devquarry.cli import main

main()
