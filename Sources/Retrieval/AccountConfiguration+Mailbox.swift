public import Configuration
public import UIDLStore

extension AccountConfiguration {
    /// The account's mailbox in the state database (see ``AccountConfiguration/stateKey``).
    public var mailbox: MailboxID { MailboxID(self.stateKey) }
}
