from pixsim_contracts import main

main()
