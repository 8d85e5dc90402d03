from studies.migrations import main

main()
